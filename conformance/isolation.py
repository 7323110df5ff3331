"""Per-check time limits, so that an API that hangs becomes a `timeout` record and the run goes on.

Two limits guard each framework call:
  soft  SIGALRM raises CheckTimeout inside the call after `timeout` seconds (works whenever the
        call returns to the Python interpreter, e.g. a sleep or a Python loop);
  hard  a watchdog thread notes the check in `<results>.hung` and ends the process after
        `timeout + grace` seconds (a hang inside C code that never returns to Python). Under
        pytest-xdist the controller sees the worker die, reads the note and records `timeout`
        rather than `crash`, and xdist starts a fresh worker for the remaining checks.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

DEFAULT_TIMEOUT = 120.0


class CheckTimeout(Exception):
    pass


_settings = {"timeout": DEFAULT_TIMEOUT, "marker": None, "hard": False, "item": ""}
_watch = {"deadline": None}
_lock = threading.Lock()
_thread: threading.Thread | None = None


def configure(timeout: float | None, marker: Path | None, hard: bool) -> None:
    """`hard` only where a dead process is survivable (an xdist worker)."""
    _settings.update(timeout=timeout or None, marker=marker, hard=hard)


def hung_marker(results: Path | str) -> Path:
    return Path(str(results) + ".hung")


def running(item_id: str) -> None:
    """Name the test item now running (the watchdog's note identifies it to the controller)."""
    _settings["item"] = item_id


@contextlib.contextmanager
def guard():
    timeout = _settings["timeout"]
    if not timeout:
        yield
        return
    soft = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    if soft:
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    if _settings["hard"]:
        _arm(time.monotonic() + timeout + max(5.0, timeout))
    try:
        yield
    finally:
        if soft:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        if _settings["hard"]:
            _arm(None)


def _alarm(signum, frame):
    raise CheckTimeout(f"the call did not return within {_settings['timeout']:g} s")


def _arm(deadline) -> None:
    global _thread
    with _lock:
        _watch["deadline"] = deadline
        if _thread is None and deadline is not None:
            _thread = threading.Thread(target=_watchdog, name="klconf-watchdog", daemon=True)
            _thread.start()


def _watchdog() -> None:
    while True:
        time.sleep(0.25)
        with _lock:
            deadline = _watch["deadline"]
        if deadline is not None and time.monotonic() > deadline:
            marker = _settings["marker"]
            if marker:
                with open(marker, "a", encoding="utf-8") as f:
                    f.write(_settings["item"] + "\n")
            os._exit(70)
