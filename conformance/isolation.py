"""The one guard around code under test, and the one guard around a whole check.

`ApiCall` wraps every call into an API or library (value, gradient, distribution, convention
probes, porting sources): whatever the call does, control comes back to klconf.
  raises      any BaseException (KeyboardInterrupt, SystemExit, GeneratorExit, a custom
              BaseException subclass, ...) comes out as `ApiRaised`, carrying the original; only
              the user's own Ctrl-C or SIGTERM (a handler notes the signal before raising) goes
              through and ends the run.
  state       process-global state it changed is restored and named (conformance/sandbox.py),
              what it printed to standard output or error is caught and measured.
  hangs       two time limits:
                soft  SIGALRM raises CheckTimeout inside the call after `timeout` seconds (works
                      whenever the call returns to the interpreter, e.g. a sleep or a Python loop);
                hard  a watchdog thread notes the check in `<results>.hung` and ends the process
                      after `timeout + grace` seconds (a hang inside C code that never returns to
                      Python; `grace_for`). Under pytest-xdist the controller sees the worker die, reads the note
                      and records `timeout` rather than `crash`, and xdist starts a fresh worker.
`checked(record)` wraps a whole check of any kind: it times it, runs klconf's own arithmetic
under an explicit NumPy error state, and turns whatever escapes into the record (`fail_record`,
the one place an exception becomes a verdict), so every check ends as exactly one record.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, Literal, TypedDict

import numpy as np

from .sandbox import Sandbox

DEFAULT_TIMEOUT = 120.0
_ErrAction = Literal["ignore", "warn", "raise", "call", "print", "log"]


class _ErrState(TypedDict):
    divide: _ErrAction
    over: _ErrAction
    under: _ErrAction
    invalid: _ErrAction


API_ERRSTATE: _ErrState = {"divide": "warn", "over": "warn", "under": "ignore", "invalid": "warn"}  # NumPy's defaults
MESSAGE_LIMIT = 2000
TRACEBACK_LIMIT = 4000


class CheckTimeout(BaseException):
    """The soft time limit fired. A BaseException, so an API's own `except Exception` cannot swallow it."""


class ApiRaised(Exception):
    """The code under test raised `original` (any BaseException)."""

    def __init__(self, original: BaseException):
        super().__init__(describe(original))
        self.original = original


class _Settings(TypedDict):
    timeout: float | None
    marker: Path | None  # where the watchdog names the item it ended (None: nowhere)
    hard: bool
    item: str


_settings: _Settings = {"timeout": DEFAULT_TIMEOUT, "marker": None, "hard": False, "item": ""}
_watch: dict[str, float | None] = {"deadline": None, "limit": None}
_current = {"timeout": DEFAULT_TIMEOUT}  # the limit of the call now timed (what the soft limit's message says)
_lock = threading.Lock()
_thread: threading.Thread | None = None
_user = {"signal": None}  # the signal the user sent to end the run, once one came
_effects: list[list[str]] = []  # one list per check in progress: what its API calls left behind


def configure(timeout: float | None, marker: Path | None, hard: bool) -> None:
    """`hard` only where a dead process is survivable (an xdist worker)."""
    _settings.update({"timeout": timeout or None, "marker": marker, "hard": hard})


def hung_marker(results: Path | str) -> Path:
    return Path(str(results) + ".hung")


def hung_items(marker: Path) -> dict[str, float]:
    """The items the watchdog ended (noted in `marker`), each with the time limit its call ran under."""
    if not marker.exists():
        return {}
    items = {}
    for line in marker.read_text(encoding="utf-8", errors="replace").splitlines():
        item, _, limit = line.partition("\t")
        try:
            items[item] = float(limit)
        except ValueError:
            items[item] = 0.0
    return items


def running(item_id: str) -> None:
    """Name the test item now running (the watchdog's note identifies it to the controller)."""
    _settings["item"] = item_id


# --------------------------------------------------------------------------- the user's interrupt


def install_interrupt_handlers() -> None:
    """Ctrl-C (SIGINT) and SIGTERM end the run, and are told apart from a KeyboardInterrupt an API raises:
    the handler notes the signal before raising. Installed in every process that runs or records checks."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _user_signal)


def _user_signal(signum, frame):
    _user["signal"] = signum
    raise KeyboardInterrupt(f"{signal.Signals(signum).name} from the user")


def user_interrupted() -> bool:
    return _user["signal"] is not None


def _from_user(exc: BaseException) -> bool:
    return isinstance(exc, KeyboardInterrupt) and user_interrupted()


# --------------------------------------------------------------------------- around one API call


def grace_for(timeout: float) -> float:
    """How long the watchdog waits after the soft limit: a call that returns to Python meets the soft
    alarm at once, so one still running seconds later is inside C code. A killed process costs a fresh
    worker (its frameworks imported again); waiting as long as the limit again only idles the worker."""
    return min(max(5.0, timeout), 10.0)


class ApiCall:
    """`with ApiCall(): out = api.call(...)`: see the module's docstring. `changes` lists what the call
    left changed (restored since), also noted on the check in progress."""

    def __init__(self, capture_output: bool = True, limit: float | None = None):
        """`limit`: a shorter time limit for calls that should take well under it (the run's limit stands
        where it is shorter, and no limit where the run has none)."""
        self.sandbox = Sandbox(capture_output=capture_output)
        self._limit = limit
        self._timeout: float | None = None
        self.changes: list[str] = []
        self._soft = False
        self._previous_alarm: Callable[[int, FrameType | None], Any] | int | None = None
        self._errstate = np.errstate(**API_ERRSTATE)

    _open = 0  # ApiCalls entered and not left: one inside another only converts exceptions (one timer, one sandbox)

    def __enter__(self) -> ApiCall:
        self._outer = ApiCall._open == 0
        ApiCall._open += 1
        if not self._outer:
            return self
        self._errstate.__enter__()  # the API sees NumPy's defaults, not klconf's own error state
        self.sandbox.enter()
        timeout = _settings["timeout"]
        if timeout and self._limit:
            timeout = min(timeout, self._limit)
        self._timeout = timeout
        if timeout:
            self._soft = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
            if self._soft:
                self._previous_alarm = signal.signal(signal.SIGALRM, _alarm)
                signal.setitimer(signal.ITIMER_REAL, timeout)
                _current["timeout"] = timeout
            if _settings["hard"]:
                _arm(time.monotonic() + timeout + grace_for(timeout), timeout)
        return self

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        ApiCall._open -= 1
        if self._outer:
            self._leave()
        if exc is None or isinstance(exc, (CheckTimeout, ApiRaised)) or _from_user(exc):
            return False
        raise ApiRaised(exc) from exc

    def _leave(self) -> None:
        taken = []
        if self._soft:
            signal.setitimer(signal.ITIMER_REAL, 0)
            if signal.getsignal(signal.SIGALRM) is not _alarm:
                taken.append("replaced the SIGALRM handler (klconf's time limit)")
            signal.signal(signal.SIGALRM, self._previous_alarm)
        if self._timeout and _settings["hard"]:
            _arm(None)
        try:
            self.changes = taken + self.sandbox.leave()
        finally:
            self._errstate.__exit__(None, None, None)
        if self.changes and _effects:
            _effects[-1].extend(self.changes)


def _alarm(signum, frame):
    raise CheckTimeout(f"the call did not return within {_current['timeout']:g} s")


def _arm(deadline: float | None, limit: float | None = None) -> None:
    global _thread
    with _lock:
        _watch["deadline"], _watch["limit"] = deadline, limit
        if _thread is None and deadline is not None:
            _thread = threading.Thread(target=_watchdog, name="klconf-watchdog", daemon=True)
            _thread.start()


def _watchdog() -> None:
    while True:
        time.sleep(0.25)
        with _lock:
            deadline, limit = _watch["deadline"], _watch["limit"]
        if deadline is not None and time.monotonic() > deadline:
            marker = _settings["marker"]
            if marker:  # the item, and the limit its call ran under (see `hung_items`)
                with open(marker, "a", encoding="utf-8") as f:
                    f.write(f"{_settings['item']}\t{limit or 0:g}\n")
            os._exit(70)


# --------------------------------------------------------------------------- around one check


def describe(exc: BaseException) -> str:
    """'Type: message', for any exception, even one whose str() raises or runs to megabytes."""
    try:
        text = str(exc)
    except BaseException:  # noqa: B036 - a hostile __str__ must not end the check
        text = "<the exception's message could not be read>"
    return f"{type(exc).__name__}: {text}".strip().removesuffix(":")[:MESSAGE_LIMIT]


def _traceback(exc: BaseException) -> str:
    try:
        return "".join(traceback.format_exception(exc, limit=-3))[-TRACEBACK_LIMIT:]
    except BaseException:  # noqa: B036
        return ""


def fail_record(record, exc: BaseException) -> None:
    """The one place an exception becomes a check's verdict: the API's own (error, kind exception),
    a time limit (timeout), a missing framework or device (skip), or a bug in klconf (error, internal)."""
    from .frameworks import Unavailable

    if isinstance(exc, CheckTimeout):
        record.verdict, record.kind, record.message = "timeout", "timeout", describe(exc).partition(": ")[2]
    elif isinstance(exc, ApiRaised) and isinstance(exc.original, Unavailable):  # a device gone mid-call
        record.verdict, record.kind, record.reason = "skip", None, str(exc.original)
    elif isinstance(exc, ApiRaised):
        record.verdict, record.kind, record.message = "error", "exception", describe(exc.original)
        record.extra["traceback"] = _traceback(exc.original)
    elif isinstance(exc, Unavailable):
        record.verdict, record.kind, record.reason = "skip", None, str(exc)
    else:
        record.verdict, record.kind = "error", "internal"
        record.message = f"klconf internal error: {describe(exc)}"
        record.extra["traceback"] = _traceback(exc)


@contextlib.contextmanager
def checked(record) -> Iterator[None]:
    """Run one check of any kind: see the module's docstring. Re-raises only the user's interrupt."""
    started = time.perf_counter()
    effects: list[str] = []
    _effects.append(effects)
    try:
        with np.errstate(all="ignore"):  # klconf's own arithmetic: explicit, never inherited from an API
            yield
    except BaseException as exc:  # noqa: B036 - whatever escapes becomes the record
        if _from_user(exc):
            raise
        fail_record(record, exc)
    finally:
        _effects.pop()
        record.duration_s = time.perf_counter() - started
        note_side_effects(record, effects)


def noted(changes: list[str]) -> None:
    """Note on the check in progress what a call made for it left changed, where the call ran for another
    check too (`ApiCall.changes` of a call whose result two checks share): each check names it."""
    if changes and _effects:
        _effects[-1].extend(changes)


def note_side_effects(record, effects: list[str]) -> None:
    """Name what the check's calls left behind: in `extra["side_effects"]`, and as the message of a
    record that has none (a passing check says why it is worth a look)."""
    effects = list(dict.fromkeys(effects))
    if not effects:
        return
    record.extra["side_effects"] = effects
    if not record.message:
        record.message = "the call " + "; ".join(effects)
