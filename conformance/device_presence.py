"""Whether a machine could have a GPU at all, decided without importing any framework.

A framework reports its devices only once imported (seconds, gigabytes), so the planner cannot ask it. But
no framework can see a GPU whose driver exposes no device node: CUDA needs /dev/nvidiactl and /dev/nvidia<N>,
ROCm (which PyTorch and JAX present as "cuda") needs /dev/kfd, and WSL2 passes GPUs through /dev/dxg. When
none exists, checks on the GPU need not be planned one by one: each would only be a skip, and a machine
without a GPU would write tens of thousands of them. Where the answer is not certain (an operating system
whose devices are not files), the device counts as possibly present and every check is planned as before.
"""

from __future__ import annotations

import glob
import os
import sys

GPU_NODES = ("/dev/nvidiactl", "/dev/nvidia[0-9]*", "/dev/kfd", "/dev/dxg")


def absent_devices(root: str = "") -> dict[str, str]:
    """Devices that no framework on this machine can see, each with the reason (empty where unsure).

    root: prefix for the device paths (tests point it at a directory standing in for /dev's parent).
    """
    if sys.platform == "darwin":
        return {"cuda": "macOS has no CUDA or ROCm devices"}
    if not sys.platform.startswith("linux"):
        return {}
    if any(glob.glob(root + pattern) for pattern in GPU_NODES):
        return {}
    if not os.path.isdir(root + "/dev"):
        return {}  # no /dev to look in (an unusual sandbox): unsure, so plan as usual
    return {"cuda": "no GPU device node on this machine (" + ", ".join(GPU_NODES) + "): no framework can see one"}
