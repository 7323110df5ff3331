"""A progress display for `klconf run`: checks done of planned, verdict counts, the slowest work in
flight and an estimate of the time left.

On a terminal it is a live line drawn by `rich` on standard error, and pytest's per-check dots are
switched off (they would fight the live line). Where standard error is not a terminal (CI, a pipe)
it is plain and quiet: one line whenever another tenth of the plan is done, and at most one a
minute in between, so a log stays short and still shows that the run is alive.

It runs in the process that writes results (the pytest-xdist controller, or pytest itself): the
controller sees every check start (`pytest_runtest_logstart`) and finish (`pytest_runtest_logreport`)
on every worker, so in-flight work and verdicts are known without asking the workers.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import pytest

from .results_file import RECORD_KEY  # the user property that carries a check's record

PLAIN_INTERVAL_S = 60.0


@dataclass
class State:
    """What the display shows; kept apart from drawing so that it can be tested on its own."""

    planned: int | None = None
    done: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)
    running: dict[str, float] = field(default_factory=dict)  # node id -> start time
    started: float = field(default_factory=time.monotonic)

    def start(self, nodeid: str, now: float) -> None:
        self.running[nodeid] = now

    def finish(self, nodeid: str, verdict: str) -> None:
        self.running.pop(nodeid, None)
        self.done += 1
        self.verdicts[verdict] = self.verdicts.get(verdict, 0) + 1

    def eta_s(self, now: float) -> float | None:
        """Seconds left at the rate so far (None until something is done or while the plan is unknown)."""
        if not self.planned or not self.done:
            return None
        return max(0.0, (now - self.started) / self.done * (self.planned - self.done))

    def slowest(self, now: float) -> tuple[str, float] | None:
        if not self.running:
            return None
        nodeid, since = min(self.running.items(), key=lambda kv: kv[1])
        return nodeid, now - since

    def line(self, now: float) -> str:
        planned = "?" if self.planned is None else str(self.planned)
        share = f" ({100 * self.done / self.planned:.0f}%)" if self.planned else ""
        counts = ", ".join(f"{n} {v}" for v, n in sorted(self.verdicts.items(), key=lambda kv: -kv[1]))
        parts = [f"{self.done}/{planned} checks{share}"]
        if counts:
            parts.append(counts)
        eta = self.eta_s(now)
        if eta is not None:
            parts.append(f"ETA {format_seconds(eta)}")
        slowest = self.slowest(now)
        if slowest and slowest[1] >= 5:
            parts.append(f"slowest now: {short_id(slowest[0])} ({format_seconds(slowest[1])})")
        return ", ".join(parts)


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def short_id(nodeid: str, width: int = 70) -> str:
    """The check's parameter (what says which case, API, options, device and dtype), shortened."""
    text = nodeid.partition("[")[2][:-1] or nodeid
    return text if len(text) <= width else text[: width - 1] + "…"


def verdict_of(report) -> str | None:
    """The klconf verdict a test report carries, or pytest's outcome for a test that carries none."""
    for key, value in getattr(report, "user_properties", ()):
        if key == RECORD_KEY:
            try:
                return json.loads(value)["verdict"]
            except (ValueError, KeyError, TypeError):
                return None
    return None


class Progress:
    """The pytest plugin. `live` draws with rich on a terminal; otherwise `write` gets plain lines."""

    def __init__(self, live: bool, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic):
        self.state = State(started=clock())
        self.clock = clock
        self.stream = stream or sys.stderr
        self.live = live
        self._rich: Any = None  # a rich.live.Live once started
        self._next_share = 0.1
        self._last_line = clock()

    @classmethod
    def for_stream(cls, stream: TextIO | None = None) -> Progress:
        stream = stream or sys.stderr
        return cls(live=bool(getattr(stream, "isatty", lambda: False)()), stream=stream)

    # ------------------------------------------------------------------ the plan

    def pytest_collection_finish(self, session):  # plain pytest (no workers)
        if self.state.planned is None:
            self.state.planned = len(session.items)
        self._start_live()

    def pytest_xdist_node_collection_finished(self, node, ids):  # every worker collects the whole plan
        if self.state.planned is None:
            self.state.planned = len(ids)
        self._start_live()

    # ------------------------------------------------------------------ checks

    def pytest_runtest_logstart(self, nodeid, location):
        self.state.start(nodeid, self.clock())

    def pytest_runtest_logreport(self, report):
        crashed = report.when == "???"  # pytest-xdist: the worker running this check died
        if report.when == "call" or crashed or (report.when == "setup" and not report.passed):
            verdict = verdict_of(report) or ("crash" if crashed else report.outcome)
            self.state.finish(report.nodeid, verdict)
            self._show()

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report, config):
        """No per-check letters under the live line (the live line says more); plain mode keeps pytest's."""
        if not self.live or report.when != "call":
            return None
        if hasattr(report, "wasxfail"):
            return ("xfailed" if report.skipped else "xpassed"), "", ""
        return report.outcome, "", ""

    def pytest_sessionfinish(self, session, exitstatus):
        self._stop_live()
        if not self.live and self.state.done:
            self._write(self.state.line(self.clock()))

    # ------------------------------------------------------------------ drawing

    def _start_live(self) -> None:
        if not self.live or self._rich is not None:
            return
        from rich.console import Console
        from rich.live import Live

        self._rich = Live(
            console=Console(file=self.stream),
            refresh_per_second=4,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
            get_renderable=self._renderable,
        )
        self._rich.start()

    def _renderable(self):
        from rich.text import Text

        return Text(self.state.line(self.clock()), style="bold")

    def _stop_live(self) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None

    def _show(self) -> None:
        if self.live:
            return  # rich refreshes on its own
        now, state = self.clock(), self.state
        share = state.done / state.planned if state.planned else 0.0
        if share >= self._next_share or now - self._last_line >= PLAIN_INTERVAL_S:
            while self._next_share <= share:
                self._next_share += 0.1
            self._write(state.line(now))

    def _write(self, text: str) -> None:
        self._last_line = self.clock()
        print(f"klconf: {text}", file=self.stream, flush=True)
