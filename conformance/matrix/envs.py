"""One virtual environment per release, made with uv and kept for the next run.

An environment is keyed by what decides its contents (the pins, the Python, the wheel folders),
so a release installed once is reused, and two releases never share a folder. klconf itself is
installed editable from the checkout, so every environment runs the code being worked on. uv
keeps one download cache for all of them (UV_CACHE_DIR, or its default), which makes a second
JAX or TensorFlow release cost little more than the packages that differ.

An install that fails is an outcome, not an exception: its reason is the installer's own last
lines, and the matrix records it.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .releases import LOCAL_WHEELS, Release

DEFAULT_ROOT = Path(".klconf-envs")
MARKER = "klconf-env.json"  # written last: an environment without it is unfinished and is rebuilt
REASON_LINES = 12


@dataclass
class Installed:
    """What installing a release gave: a Python to run klconf with, or the reason there is none."""

    release: str
    ok: bool
    python: str = ""
    env: str = ""
    seconds: float = 0.0
    reused: bool = False
    reason: str = ""
    command: str = ""


def uv_binary() -> str | None:
    found = shutil.which("uv")
    if found:
        return found
    local = Path.home() / ".local" / "bin" / "uv"
    return str(local) if local.exists() else None


class UvInstaller:
    """Creates and reuses release environments under `root` (git-ignored)."""

    def __init__(
        self,
        checkout: Path,
        root: Path = DEFAULT_ROOT,
        python: str | None = None,
        find_links: tuple[str, ...] = LOCAL_WHEELS,
        timeout_s: float = 3600,
    ):
        self.checkout = Path(checkout).resolve()
        self.root = Path(root)
        self.python = python or sys.executable
        self.find_links = tuple(f for f in find_links if Path(f).is_dir())
        self.timeout_s = timeout_s

    def key(self, release: Release) -> str:
        basis = json.dumps(
            {
                "pins": sorted(release.requirements),
                "python": _python_version(self.python),
                "find_links": self.find_links,
            },
            sort_keys=True,
        )
        return f"{release.label}-{hashlib.sha256(basis.encode()).hexdigest()[:10]}"

    def install(self, release: Release) -> Installed:
        """Install under a per-environment lock, so two runs (a matrix and a bisection) never build one folder twice."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f"{self.key(release)}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return self._install(release)

    def _install(self, release: Release) -> Installed:
        env = (self.root / self.key(release)).resolve()
        python = env / "bin" / "python"
        if (env / MARKER).exists() and python.exists():
            return Installed(release.label, True, str(python), str(env), 0.0, reused=True)
        uv = uv_binary()
        if uv is None:
            return Installed(release.label, False, env=str(env), reason="uv is not installed (pip install uv)")
        started = time.monotonic()
        if env.exists():
            shutil.rmtree(env)  # an unfinished environment from an interrupted install
        steps = [
            [uv, "venv", "--quiet", "--python", self.python, str(env)],
            [
                uv,
                "pip",
                "install",
                "--quiet",
                "--python",
                str(python),
                *[arg for folder in self.find_links for arg in ("--find-links", folder)],
                "-e",
                str(self.checkout),
                *release.requirements,
            ],
        ]
        for step in steps:
            outcome = _run(step, self.timeout_s)
            if outcome:
                shutil.rmtree(env, ignore_errors=True)
                return Installed(
                    release.label,
                    False,
                    env=str(env),
                    seconds=round(time.monotonic() - started, 1),
                    reason=outcome,
                    command=" ".join(step),
                )
        seconds = round(time.monotonic() - started, 1)
        result = Installed(release.label, True, str(python), str(env), seconds, command=" ".join(steps[-1]))
        (env / MARKER).write_text(json.dumps({**asdict(result), "requirements": list(release.requirements)}, indent=1))
        return result


def _run(argv: list[str], timeout_s: float) -> str:
    """ "" when the command succeeded, else the reason: its last lines of output."""
    environ = dict(os.environ, PIP_CONSTRAINT="", UV_NO_PROGRESS="1")
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, env=environ)
    except subprocess.TimeoutExpired:
        return f"the installer ran past {timeout_s:.0f} s"
    except OSError as exc:
        return f"the installer could not start: {exc}"
    if done.returncode == 0:
        return ""
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    return "\n".join(lines[-REASON_LINES:]) or f"exit status {done.returncode}"


@functools.cache
def _python_version(python: str) -> str:
    try:
        return subprocess.run(
            [python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True, timeout=60
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return python
