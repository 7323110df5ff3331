"""The machine a run happened on, as its results file's header records it: enough to tell two runs apart.

Python, platform, CPU and GPU models (from nvidia-smi), NumPy, and the environment variables that change
numerics or thread counts, so `klconf diff` of two runs can say when a difference may be the machine's.
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

# Environment variables that change numerics or thread counts: recorded as set, so two runs compare.
NUMERICS_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TF_ENABLE_ONEDNN_OPTS",
    "TF_USE_LEGACY_KERAS",
    "KERAS_BACKEND",
    "NVIDIA_TF32_OVERRIDE",
    "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",
    "CUBLAS_WORKSPACE_CONFIG",
    "JAX_ENABLE_X64",
    "JAX_DEFAULT_MATMUL_PRECISION",
    "JAX_PLATFORMS",
    "XLA_FLAGS",
    "CUDA_VISIBLE_DEVICES",
)


def description() -> dict:
    """The header's machine fields (conformance/schema/results.schema.json, the `run` record)."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "gpus": gpus(),
        "env": {name: os.environ[name] for name in NUMERICS_ENV if name in os.environ},
    }


@functools.lru_cache(maxsize=1)
def gpus() -> list[dict]:
    """GPU model, driver and memory from nvidia-smi; empty where there is no NVIDIA GPU or tool."""
    tool = shutil.which("nvidia-smi")
    if not tool:
        return []
    query = "index,name,driver_version,memory.total,compute_cap"
    try:
        out = subprocess.run(
            [tool, f"--query-gpu={query}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found: list[dict] = []
    for line in out.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) >= 4 and fields[1]:
            gpu = {
                "index": int(fields[0]) if fields[0].isdigit() else len(found),
                "name": fields[1],
                "driver": fields[2],
                "memory": fields[3],
            }
            if len(fields) > 4 and fields[4] not in ("", "[N/A]"):
                gpu["compute_capability"] = fields[4]
            found.append(gpu)
    return found


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
