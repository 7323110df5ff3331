"""What one API call may change in the process, watched and put back before the next check runs.

An API runs in klconf's own process, so it can change process-global state that later checks
and klconf's arithmetic depend on: NumPy's error state (one `np.seterr(all="raise")` would turn
every later judgement into an exception), the recursion limit, warning filters, signal handlers,
the working directory, `sys.path`, environment variables, `sys.stdout`, and each framework's
defaults (torch's default dtype and thread count, JAX's x64 flag and default device, Keras'
floatx, ...). `Sandbox` snapshots all of it before the call, compares after it, restores what
changed and names each change, so a check that left state changed says so in its record and
the next check starts from the same state as the first.

It also catches what a call writes to the process's standard output and error, through Python
(`print`) or straight to file descriptors 1 and 2 (C code, `os.write(1, ...)`): the bytes go to a
scratch file (truncated after each call, so a flood costs disk only while it lasts), and the
record says how much was written and how it began. A thread the call leaves running is named.

The framework-specific parts are each binding's `state(fw)` / `restore(fw, saved)` pair
(conformance/frameworks/<name>.py), asked only of frameworks this process has loaded.
"""

from __future__ import annotations

import _signal
import atexit
import os
import signal
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

# Signals whose handlers klconf relies on (interrupts, the time limit) or an API might take over.
WATCHED_SIGNALS = tuple(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGALRM", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGPIPE", "SIGCHLD")
    if hasattr(signal, name)
)
PREVIEW_BYTES = 120  # how much of a call's output a record quotes


@dataclass(frozen=True)
class StateVar:
    """One piece of process state: how to read it and how to put a saved value back."""

    name: str
    read: Callable[[], Any]
    write: Callable[[Any], object]  # what a setter returns is ignored


def _set_filters(saved: list) -> None:
    warnings.filters[:] = saved  # type: ignore[index]  # typeshed declares a Sequence; it is a list at runtime
    getattr(warnings, "_filters_mutated", lambda: None)()


def _environ() -> dict:
    """The environment as bytes (a copy of os.environ's own table: 20x faster than decoding every entry)."""
    return dict(getattr(os.environ, "_data", None) or os.environb)


def _set_environ(saved: dict) -> None:
    now = _environ()
    for name in set(now) - set(saved):
        del os.environb[name]
    for name, value in saved.items():
        if now.get(name) != value:
            os.environb[name] = value


def _set_signal(signum: int) -> Callable[[Any], None]:
    def write(handler) -> None:
        if handler is not None:  # None: installed from outside Python, cannot be put back from here
            _signal.signal(signum, handler)

    return write


def _set_trace(saved: tuple) -> None:
    sys.settrace(saved[0])
    sys.setprofile(saved[1])


def _set_gc(enabled: bool) -> None:
    import gc

    (gc.enable if enabled else gc.disable)()


def _mpmath_var() -> list[StateVar]:
    """The oracle's working precision (mpmath is klconf's, but an API may import and change it)."""
    mpmath = sys.modules.get("mpmath")
    if mpmath is None:
        return []
    return [StateVar("mpmath.mp.prec", lambda: mpmath.mp.prec, lambda v: setattr(mpmath.mp, "prec", v))]


_PROCESS_VARS: dict[tuple, list[StateVar]] = {}


def process_vars() -> list[StateVar]:
    """The framework-independent state: Python's and NumPy's (built once per kind of caller)."""
    key = (threading.current_thread() is threading.main_thread(), "mpmath" in sys.modules)
    found = _PROCESS_VARS.get(key)
    if found is None:
        found = _PROCESS_VARS[key] = _build_process_vars(*key)
    return found


def _build_process_vars(main_thread: bool, mpmath: bool) -> list[StateVar]:
    import gc

    out = [
        StateVar("numpy.errstate", np.geterr, lambda v: np.seterr(**v)),
        StateVar("numpy.printoptions", np.get_printoptions, lambda v: np.set_printoptions(**v)),
        StateVar("sys.recursionlimit", sys.getrecursionlimit, sys.setrecursionlimit),
        StateVar("warnings.filters", lambda: list(warnings.filters), _set_filters),
        StateVar("sys.path", lambda: list(sys.path), lambda v: sys.path.__setitem__(slice(None), v)),
        StateVar("os.environ", _environ, _set_environ),
        StateVar("os.getcwd", os.getcwd, os.chdir),
        *(
            StateVar(f"sys.{name}", partial(getattr, sys, name), partial(setattr, sys, name))
            for name in ("stdin", "stdout", "stderr")
        ),
        StateVar("sys.settrace/setprofile", lambda: (sys.gettrace(), sys.getprofile()), _set_trace),
        StateVar("sys.excepthook", lambda: sys.excepthook, lambda v: setattr(sys, "excepthook", v)),
        StateVar("gc.isenabled", gc.isenabled, _set_gc),
    ]
    if main_thread:  # signal handlers can only be read and set there
        out += [
            StateVar(f"signal handler {signal.Signals(s).name}", partial(_signal.getsignal, s), _set_signal(s))
            for s in WATCHED_SIGNALS
        ]
    return out + (_mpmath_var() if mpmath else [])


def _loaded_bindings() -> list:
    """The bindings whose framework this process has imported (only those can have changed)."""
    from .frameworks import FRAMEWORKS

    out = []
    for name in FRAMEWORKS + ("numpy",):
        b = getattr(sys.modules.get(f"conformance.frameworks.{name}"), "BINDING", None)
        if b is not None and b._handle is not None and b.state is not None:
            out.append(b)
    return out


def _differs(a: Any, b: Any) -> bool:
    try:
        return bool(a != b) if not isinstance(a, tuple) else any(x is not y for x, y in zip(a, b))
    except Exception:  # values whose comparison fails (arrays, odd objects): compare identity
        return a is not b


def _short(value: Any, limit: int = 60) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _decoded(table: dict) -> dict:
    """The environment's bytes shown as text."""
    return {os.fsdecode(k): os.fsdecode(v) if isinstance(v, bytes) else v for k, v in table.items()}


def _described(name: str, before: Any, after: Any) -> str:
    if isinstance(before, dict) and isinstance(after, dict):
        before, after = _decoded(before), _decoded(after)
        keys = sorted((k for k in set(before) | set(after) if _differs(before.get(k), after.get(k))), key=str)
        shown = ", ".join(f"{k}: {_short(before.get(k), 30)} -> {_short(after.get(k), 30)}" for k in keys[:4])
        return f"{name} ({shown}{', ...' if len(keys) > 4 else ''})"
    if isinstance(before, list) and isinstance(after, list):
        if len(before) != len(after):
            return f"{name} ({len(before)} -> {len(after)} entries)"
        return f"{name} (reordered or edited)"
    return f"{name} ({_short(before)} -> {_short(after)})"


class _Capture:
    """Standard output and error of one call, Python-level and file-descriptor-level, into scratch files."""

    _files: dict[int, tuple[Any, Any]] = {}  # fd -> (scratch file, text stream writing to that fd), made once

    def __init__(self):
        self.saved: dict[int, int] = {}
        self.streams: tuple | None = None

    def start(self) -> None:
        try:
            for stream in (sys.stdout, sys.stderr):
                _flush(stream)
            for fd in (1, 2):
                if fd not in self._files:
                    if not self._files:
                        atexit.register(_Capture.close_files)
                    self._files[fd] = (
                        tempfile.TemporaryFile(prefix=f"klconf-fd{fd}-"),
                        open(fd, "w", encoding="utf-8", errors="replace", closefd=False),
                    )
                self.saved[fd] = os.dup(fd)
                os.dup2(self._files[fd][0].fileno(), fd)
        except OSError:  # no such descriptor here (a daemon, a closed stream): nothing to capture
            self.stop()
            return
        self.streams = (sys.stdout, sys.stderr)
        sys.stdout, sys.stderr = self._files[1][1], self._files[2][1]

    @classmethod
    def close_files(cls) -> None:
        """At exit: the scratch files closed (left open, each was reported as an unclosed-file
        ResourceWarning as the interpreter shut down, after every klconf run)."""
        for scratch, stream in cls._files.values():
            for f in (stream, scratch):
                try:
                    f.close()
                except OSError:
                    pass
        cls._files.clear()

    def stop(self) -> list[str]:
        """Put the descriptors back; what was written, as side-effect texts."""
        found = []
        if self.streams is not None:
            for stream in (sys.stdout, sys.stderr, self._files[1][1], self._files[2][1]):
                _flush(stream)
            sys.stdout, sys.stderr = self.streams
            self.streams = None
        for fd, saved in self.saved.items():
            os.dup2(saved, fd)
            os.close(saved)
            scratch = self._files[fd][0]
            size = os.fstat(scratch.fileno()).st_size
            if size:
                scratch.seek(0)
                head = scratch.read(PREVIEW_BYTES).decode("utf-8", "replace")
                scratch.seek(0)
                scratch.truncate(0)
                where = "standard output" if fd == 1 else "standard error"
                found.append(
                    f"wrote {size:,} bytes to {where} (file descriptor {fd}): {head!r}"
                    + ("..." if size > PREVIEW_BYTES else "")
                )
        self.saved = {}
        return found


def _flush(stream) -> None:
    try:
        stream.flush()
    except Exception:
        pass


@dataclass
class Sandbox:
    """Around one API call: `enter()` before it, `leave()` after it (also after an exception)."""

    capture_output: bool = True
    changes: list[str] = field(default_factory=list)  # what the call left changed (and klconf put back)
    _vars: list[StateVar] = field(default_factory=list)
    _saved: list = field(default_factory=list)
    _frameworks: list = field(default_factory=list)
    _threads: int = 0
    _thread_ids: set = field(default_factory=set)
    _capture: _Capture | None = None

    def enter(self) -> Sandbox:
        if self.capture_output:
            self._capture = _Capture()
            self._capture.start()
        self._vars = process_vars()
        self._saved = [v.read() for v in self._vars]
        self._frameworks = [(b, b.state(b._handle)) for b in _loaded_bindings()]
        self._threads = threading.active_count()
        self._thread_ids = {t.ident for t in threading.enumerate()}
        return self

    def leave(self) -> list[str]:
        """Restore what changed; returns one text per change, also kept in `changes`."""
        found = []
        for var, before in zip(self._vars, self._saved):
            try:
                after = var.read()
                if _differs(before, after):
                    found.append(f"changed {_described(var.name, before, after)}")
                    var.write(before)
            except Exception as exc:  # restoring must not end the check: say what could not be put back
                found.append(f"changed {var.name}, which klconf could not restore ({type(exc).__name__}: {exc})")
        for b, before in self._frameworks:
            found += _restore_framework(b, before)
        started = (
            []
            if threading.active_count() <= self._threads
            else [  # (counting first is 20x cheaper)
                t
                for t in threading.enumerate()
                if t.ident not in self._thread_ids and t.is_alive() and not t.name.startswith("klconf-")
            ]
        )
        if started:
            names = ", ".join(f"{t.name}{' (daemon)' if t.daemon else ''}" for t in started[:4])
            found.append(f"left {len(started)} thread(s) running: {names}")
        if self._capture is not None:
            found += self._capture.stop()
            self._capture = None
        self.changes += found
        return found


def _restore_framework(b, before: dict) -> list[str]:
    try:
        after = b.state(b._handle)
    except Exception as exc:
        return [f"{b.name} state could not be read after the call ({type(exc).__name__}: {exc})"]
    changed = {k: v for k, v in before.items() if _differs(v, after.get(k))}
    if not changed:
        return []
    texts = [f"changed {_described(k, before[k], after.get(k))}" for k in sorted(changed)]
    try:
        b.restore(b._handle, changed)
    except Exception as exc:
        texts.append(f"{b.name} state could not be restored ({type(exc).__name__}: {exc})")
    return texts
