"""The results file: one line per planned check, written by the one process that sees every report.

Records travel from the process that ran a check through `report.user_properties` (under RECORD_KEY, with
the framework's information once per process under FRAMEWORK_KEY); this plug-in, registered in the
pytest-xdist controller or in plain pytest, writes them as they arrive and makes the records no process
sent: a died worker's check (`crash`, or `timeout` where the watchdog noted it), a test that ended outside
its check's guard (`error`), and, in the end record, the planned checks that never ran.
"""

from __future__ import annotations

import json
import os

import pytest

from . import coverage, device_skips, isolation, kinds, selection, sharding
from .outcomes import FAILING
from .results import ResultsUnwritable, Writer, run_header

RECORD_KEY = "klconf_record"
FRAMEWORK_KEY = "klconf_framework"


class ResultsFile:
    """Registered in the process that writes results: one line per planned check, whatever became of it.

    A check's record comes from the process that ran it. When none comes -- the process died (a crash, or
    the watchdog ending a hang), the test failed outside the check's own guard -- the record is made here
    from the planned check (`Check.record()`, for every kind). Planned checks that never ran (the user's
    interrupt, pytest stopping early) are listed in the end record, so the file says what it lacks.
    """

    def __init__(self, path: str, corpus_hash: str, config):
        self.stopped = False  # the results file took no more lines: the run stops, nothing more is written
        try:
            self.writer = Writer(path)
            self.writer.write(run_header(corpus_hash=corpus_hash, **sharding.header_fields(config)))
        except ResultsUnwritable as exc:
            raise pytest.UsageError(f"klconf: {exc}; no check was run") from None
        self.counts: dict[str, int] = {}
        self.frameworks_seen: set[str] = set()
        self.coverage = coverage.Coverage()
        self.config = config
        self.hung = isolation.hung_marker(path)
        self.hung.unlink(missing_ok=True)
        self._by_node: dict[str, dict] = {}  # kind -> pytest id -> planned check
        self.planned: list[str] | None = None  # node ids of the klconf checks collected
        self.recorded: set[str] = set()
        self.failed_items: set[str] = set()  # node ids pytest reported failed, in any phase
        self.lost_as_expected: set[str] = set()  # ...of them, a died process an expectation entry explains

    # ------------------------------------------------------------------ the plan

    def pytest_collection_finish(self, session):  # plain pytest (no workers)
        if self.planned is None:
            self.planned = [item.nodeid for item in session.items if self._check_of(item.nodeid) is not None]

    def pytest_xdist_node_collection_finished(self, node, ids):  # every worker collects the whole plan
        if self.planned is None:
            self.planned = [nodeid for nodeid in ids if self._check_of(nodeid) is not None]

    # ------------------------------------------------------------------ records

    def pytest_runtest_logreport(self, report):
        if report.failed:
            self.failed_items.add(report.nodeid)
        if report.nodeid in self.recorded:
            return
        if report.when == "???" and report.failed:  # pytest-xdist: the worker running this check died
            lost = self._lost(report)
            if lost["verdict"] not in FAILING:  # a known hang or crash, matched by its expectation entry
                self.lost_as_expected.add(report.nodeid)
            self._write(report.nodeid, lost)
            return
        if report.when == "call":  # user_properties ride on every phase's report
            for key, value in report.user_properties:
                if key == FRAMEWORK_KEY and value not in self.frameworks_seen:
                    self.frameworks_seen.add(value)
                    self._emit(json.loads(value))
                elif key == RECORD_KEY:
                    self._write(report.nodeid, json.loads(value))
                    return
        if report.when == "call" or (report.when == "setup" and not report.passed):
            orphan = self._unrecorded(report)
            if orphan is not None:
                self._write(report.nodeid, orphan)

    def _write(self, nodeid: str, event: dict) -> None:
        self._emit(event)
        self.recorded.add(nodeid)
        self.counts[event["verdict"]] = self.counts.get(event["verdict"], 0) + 1
        self.coverage.add(event)

    def _emit(self, event: dict) -> None:
        """One line of the results file. Where it cannot be written, the run stops with one message that
        says why, not pytest's internal error: every later check would be run and lost."""
        if self.stopped:
            return
        try:
            self.writer.write(event)
        except ResultsUnwritable as exc:
            self.stopped = True
            pytest.exit(
                f"klconf: {exc}; the run stops here ({sum(self.counts.values())} checks were recorded before it)",
                returncode=pytest.ExitCode.INTERNAL_ERROR,
            )

    def _planned_record(self, nodeid: str, verdict: str, message: str) -> dict:
        check = self._check_of(nodeid)
        if check is None:
            return {
                "type": "check",
                "check_id": nodeid,
                "case_id": "",
                "case_hash": "",
                "api": "",
                "framework": "",
                "device": "",
                "dtype": "",
                "options": {},
                "verdict": verdict,
                "kind": verdict,
                "message": message,
            }
        rec = check.record()
        rec.verdict, rec.message = verdict, message
        rec.kind = None if verdict in ("skip", "unsupported") else verdict
        if verdict == "skip":
            rec.reason, rec.message = message, ""
        known = selection.manifest(self.config)
        return (known.apply(rec) if known else rec).to_json()

    def _lost(self, report) -> dict:
        """A record for a check whose process died: `timeout` if the watchdog noted it, else `crash`."""
        hung = isolation.hung_items(self.hung)
        if report.nodeid in hung:
            limit = hung[report.nodeid] or self.config.getoption("klconf_timeout")
            return self._planned_record(
                report.nodeid,
                "timeout",
                f"the process running this check was ended after the {limit:g} s time limit (a hang outside Python)",
            )
        return self._planned_record(report.nodeid, "crash", str(report.longrepr))

    def _unrecorded(self, report) -> dict | None:
        """A klconf check whose test ended without its record (a failure outside the check's guard)."""
        if self._check_of(report.nodeid) is None:
            return None
        text = str(report.longrepr)[-2000:] if report.longrepr else report.outcome
        if report.skipped:
            return self._planned_record(report.nodeid, "skip", f"pytest skipped it: {text}")
        record = self._planned_record(
            report.nodeid, "error", f"the check ended without a record ({report.when}): {text}"
        )
        record["kind"] = "internal"
        return record

    def _check_of(self, nodeid: str):
        """The planned check a test item runs (None: not a klconf check). A kind is planned here only once
        one of its checks is asked for, so a run of some kinds never plans the others."""
        name, _, param = nodeid.rpartition("::")[2].partition("[")
        kind = kinds.by_test(name)
        if kind is None or not param:
            return None
        if kind.name not in self._by_node:
            try:
                self._by_node[kind.name] = {
                    selection.node_id(c): c for c in selection.selected_checks(self.config, kind.fixture)
                }
            except Exception:  # the workers report what stops planning; records are still written, as seen
                self._by_node[kind.name] = {}
        return self._by_node[kind.name].get(param[:-1])

    # ------------------------------------------------------------------ the end

    def not_run(self) -> list[str]:
        """Check ids of the planned checks that have no record."""
        out = []
        for nodeid in self.planned or ():
            if nodeid not in self.recorded:
                check = self._check_of(nodeid)
                out.append(check.id if check is not None else nodeid)
        return out

    def _plan_every_collected_kind(self) -> None:
        """Plan each kind this run collected, so the device skips of all of them are counted (the xdist
        controller otherwise plans a kind only once a record of it arrives)."""
        for kind in kinds.KINDS:
            first = next((n for n in self.planned or () if n.rpartition("::")[2].startswith(kind.test + "[")), None)
            if first is not None:
                self._check_of(first)

    def pytest_sessionfinish(self, session, exitstatus):
        self._plan_every_collected_kind()
        if int(exitstatus) == int(pytest.ExitCode.TESTS_FAILED) and self.failed_items <= self.lost_as_expected:
            # pytest counts a died worker as a failure; its record says it was expected (xfail), and the
            # run's status follows the records, as for every other check
            session.exitstatus = exitstatus = pytest.ExitCode.OK
        missing = self.not_run()
        interrupted = int(exitstatus) == int(pytest.ExitCode.INTERRUPTED) or isolation.user_interrupted()
        self._emit(
            {
                "type": "end",
                "exitstatus": int(exitstatus),
                "counts": self.counts,
                "interrupted": interrupted,
                "planned": len(self.planned or ()),
                "complete": not interrupted and not missing,
                "not_run": missing,
                "coverage": self.coverage.to_json(),
                "device_skips": device_skips.summary(self.config),
                **sharding.end_fields(self.config),
            }
        )
        self.writer.close()

    def pytest_terminal_summary(self, terminalreporter):
        summary = ", ".join(f"{n} {v}" for v, n in sorted(self.counts.items(), key=lambda kv: -kv[1]))
        terminalreporter.write_sep("-", "klconf")
        planned = len(self.planned or ())
        terminalreporter.write_line(f"{sum(self.counts.values())} checks of {planned} planned: {summary or 'none'}")
        missing = self.not_run()
        if missing:
            terminalreporter.write_line(
                f"incomplete: {len(missing)} planned checks never ran (listed in the results' end record)"
            )
        for skip in device_skips.summary(self.config):
            terminalreporter.write_line(
                f"skipped: {skip['checks']:,} {skip['framework']} checks on {skip['device']} "
                f"were not planned: {skip['reason']}"
            )
        brief = coverage.render_brief(self.coverage.to_json())
        if brief:
            terminalreporter.write_line("coverage (details: klconf coverage RESULTS):")
            terminalreporter.write_line("  " + brief.replace("\n", "\n  "))
        terminalreporter.write_line(f"results: {os.path.relpath(self.writer.path)}")
