"""The oracle's caches: finished expectations in memory and on disk.

The disk cache (KLCONF_CACHE_DIR; 'off' disables it) is shared by pytest-xdist workers and by later
runs; its keys include the oracle's version, so a change to the arithmetic invalidates it. A large result
is one `.npz` file. A small one (most of a run's results: probes, small cases, the alternative conventions
a failing check is diagnosed with) is a row of one SQLite file, `small.sqlite`, in the same folder: an
`.npz` costs more to open than a small result costs to compute, a row about a tenth of a millisecond. Both
formats hold plain arrays, numbers and text, read back without pickle, so a cache folder someone else can
write to cannot make klconf run code.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import struct
import tempfile
import threading
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

ORACLE_VERSION = 8  # bump when the oracle's arithmetic changes, to invalidate disk caches
SMALL_STORE = "small.sqlite"


def digest(*arrays) -> str:
    h = hashlib.sha256()
    for arr in arrays:
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def digest_text(*parts: str) -> str:
    return hashlib.sha256("|".join(parts + (f"oracle {ORACLE_VERSION}",)).encode()).hexdigest()


def cache_dir() -> Path | None:
    """The disk cache's folder, or None where caching is off. Read at each use, not at import, so the
    setting in force when a check runs is the one used."""
    configured = os.environ.get("KLCONF_CACHE_DIR", "")
    if configured.lower() in ("0", "off", "none"):
        return None
    return Path(configured) if configured else Path.home() / ".cache" / "klconf" / "oracle"


class Results:
    """In-process dict plus an on-disk cache. Holds frozen dataclasses whose fields are arrays, numbers and
    strings (`refine` and other callables are not stored; a result with a field of another kind, such as a
    None bound, stays in memory only)."""

    DISK_MIN_ELEMENTS = 256  # from this many elements on, a result is a file of its own; below, a row
    MEMORY_BYTES = 256 << 20  # a process keeps at most this much in memory; the disk has the rest

    def __init__(self, kind: type):
        self._kind = kind
        self._stored = [f.name for f in fields(kind) if f.name != "refine"]
        self._memory: dict[str, Any] = {}
        self._bytes = 0
        self._small = _SmallStore()

    def get(self, key: str):
        if key in self._memory:
            return self._memory[key]
        folder = cache_dir()
        if folder is None:
            return None
        arrays = self._small.get(folder, key)
        if arrays is None:
            try:
                with np.load(folder / f"{key}.npz") as data:
                    arrays = {name: data[name] for name in self._stored}
            except (OSError, ValueError, KeyError, TypeError):
                return None
        try:
            hit = self._kind(**{name: _scalar(arrays[name]) for name in self._stored})
        except (KeyError, TypeError, ValueError):
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
        folder = cache_dir()
        if folder is None:
            return
        arrays = {name: np.asarray(getattr(value, name)) for name in self._stored}
        if any(a.dtype.hasobject for a in arrays.values()):
            return  # (a None field: neither format holds it without pickle)
        if elements < self.DISK_MIN_ELEMENTS:
            self._small.put(folder, key, arrays)
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                # numpy's stub types savez(file, *args, allow_pickle: bool, **kwds): a **dict may fill allow_pickle
                np.savez(f, **arrays)  # type: ignore[arg-type]
            os.replace(tmp, folder / f"{key}.npz")
        except OSError:
            pass  # a cache that cannot be written is only slower


class _SmallStore:
    """Small results as rows of one SQLite file per cache folder (write-ahead log, so pytest-xdist workers
    read while one writes). Every failure (a locked, full, read-only or damaged file) is a miss or an
    unwritten row: a cache that cannot be used is only slower. One connection per process and folder,
    opened again after a fork, used under a lock by whichever thread calls."""

    TIMEOUT_S = 2.0  # how long a write waits for another worker's

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._opened_for: tuple[int, Path] | None = None
        self._broken: set[tuple[int, Path]] = set()

    def _connect(self, folder: Path) -> sqlite3.Connection | None:
        owner = (os.getpid(), folder)
        if self._opened_for == owner:
            return self._connection
        if owner in self._broken:
            return None
        if self._connection is not None and self._opened_for is not None:
            if self._opened_for[0] == owner[0]:
                self._connection.close()  # another folder, this process
            else:  # a parent's, across a fork: SQLite's rule is never to use nor close it in the child (closing may
                _INHERITED.append(self._connection)  # checkpoint and remove the write-ahead log the parent is using)
        self._connection, self._opened_for = None, None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(
                str(folder / SMALL_STORE), timeout=self.TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=OFF")  # a row lost in a crash is recomputed, never read half-written
            con.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, data BLOB NOT NULL)")
        except (sqlite3.Error, OSError):
            self._broken.add(owner)
            return None
        self._connection, self._opened_for = con, owner
        return con

    def get(self, folder: Path, key: str) -> dict[str, np.ndarray] | None:
        with self._lock:
            con = self._connect(folder)
            if con is None:
                return None
            try:
                row = con.execute("SELECT data FROM results WHERE key = ?", (key,)).fetchone()
            except sqlite3.Error:
                return None
        return None if row is None else unpack(row[0])

    def put(self, folder: Path, key: str, arrays: dict[str, np.ndarray]) -> None:
        data = pack(arrays)
        with self._lock:
            con = self._connect(folder)
            if con is None:
                return
            try:
                con.execute("INSERT OR REPLACE INTO results (key, data) VALUES (?, ?)", (key, data))
            except sqlite3.Error:
                pass


_INHERITED: list[sqlite3.Connection] = []  # connections a forked process inherited: kept, untouched, until it exits


def pack(arrays: dict[str, np.ndarray]) -> bytes:
    """Named arrays as bytes: a length, a JSON header (name, dtype, shape), then each array's raw bytes."""
    header, raw = [], []
    for name, a in arrays.items():
        a = np.asarray(a)
        header.append([name, a.dtype.str, list(a.shape)])
        raw.append(a.tobytes(order="C"))
    head = json.dumps(header).encode()
    return struct.pack("<I", len(head)) + head + b"".join(raw)


def unpack(data: bytes) -> dict[str, np.ndarray] | None:
    """What `pack` wrote (None for anything else: a damaged row is a miss), as arrays of their own."""
    try:
        (length,) = struct.unpack_from("<I", data)
        header = json.loads(data[4 : 4 + length])
        offset, out = 4 + length, {}
        for name, dtype_text, shape in header:
            dtype = np.dtype(dtype_text)
            if dtype.hasobject:
                return None
            size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if offset + size > len(data):
                return None
            out[name] = np.frombuffer(data[offset : offset + size], dtype).reshape(tuple(shape)).copy()
            offset += size
        return out if offset == len(data) else None
    except (struct.error, ValueError, TypeError, UnicodeDecodeError):
        return None


def _scalar(a: np.ndarray):
    """0-d arrays of ints and strings come back as Python values; arrays stay arrays."""
    if a.ndim == 0 and a.dtype.kind in "iuU":
        return a.item()
    return a
