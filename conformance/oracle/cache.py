"""The oracle's caches: finished expectations in memory and, for large inputs, on disk.

The disk cache (KLCONF_CACHE_DIR; 'off' disables it) is shared by pytest-xdist workers and by later
runs; its keys include the oracle's version, so a change to the arithmetic invalidates it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

ORACLE_VERSION = 6  # bump when the oracle's arithmetic changes, to invalidate disk caches


def digest(*arrays) -> str:
    h = hashlib.sha256()
    for arr in arrays:
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def digest_text(*parts: str) -> str:
    return hashlib.sha256("|".join(parts + (f"oracle {ORACLE_VERSION}",)).encode()).hexdigest()


class Results:
    """In-process dict plus an on-disk cache for large inputs. Holds frozen dataclasses whose fields
    are arrays, numbers and strings (`refine` and other callables are not stored)."""

    DISK_MIN_ELEMENTS = 256  # below this, recomputing is cheaper than a file
    MEMORY_BYTES = 256 << 20  # a process keeps at most this much in memory; the disk has the rest

    def __init__(self, kind: type):
        self._kind = kind
        self._stored = [f.name for f in fields(kind) if f.name != "refine"]
        self._memory: dict[str, Any] = {}
        self._bytes = 0

    @property
    def _dir(self) -> Path | None:
        """Read at each use, not at import, so the setting in force when a check runs is the one used."""
        configured = os.environ.get("KLCONF_CACHE_DIR", "")
        if configured.lower() in ("0", "off", "none"):
            return None
        return Path(configured) if configured else Path.home() / ".cache" / "klconf" / "oracle"

    def get(self, key: str):
        if key in self._memory:
            return self._memory[key]
        folder = self._dir
        if folder is None:
            return None
        try:
            with np.load(folder / f"{key}.npz") as data:
                hit = self._kind(**{name: _scalar(data[name]) for name in self._stored})
        except (OSError, ValueError, KeyError, TypeError):
            return None
        self._remember(key, hit)
        return hit

    def _remember(self, key: str, value) -> None:
        size = sum(np.asarray(getattr(value, name)).nbytes for name in self._stored) + 200
        if self._bytes + size > self.MEMORY_BYTES:
            self._memory.clear()
            self._bytes = 0
        self._memory[key] = value
        self._bytes += size

    def put(self, key: str, value, elements: int) -> None:
        self._remember(key, value)
        folder = self._dir
        if folder is None or elements < self.DISK_MIN_ELEMENTS:
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                arrays = {name: np.asarray(getattr(value, name)) for name in self._stored}
                # numpy's stub types savez(file, *args, allow_pickle: bool, **kwds): a **dict may fill allow_pickle
                np.savez(f, **arrays)  # type: ignore[arg-type]
            os.replace(tmp, folder / f"{key}.npz")
        except OSError:
            pass  # a cache that cannot be written is only slower


def _scalar(a: np.ndarray):
    """0-d arrays of ints and strings come back as Python values; arrays stay arrays."""
    if a.ndim == 0 and a.dtype.kind in "iuU":
        return a.item()
    return a
