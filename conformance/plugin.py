"""The pytest plugin: options, markers, parametrization and the results file.

Parametrization is case x API x options x device x dtype, with one marker per
framework, device and dtype, so `-m "torch and float16"` or `-k kl_div` select
naturally. Records travel from the process that ran a check to the one that writes the
results file through `report.user_properties`, so the file is written by one process
(the pytest-xdist controller, or pytest itself) one line per completed check.
"""

from __future__ import annotations

import json
import os

import pytest

from . import cases as cases_mod
from . import coverage, device_skips, expectations, frameworks, isolation, kinds, sharding
from .dtypes import DTYPES
from .outcomes import FAILING
from .results import Record, ResultsUnwritable, Writer, jsonable, run_header
from .runner import framework_info

KINDS = kinds.KINDS  # the registry of kinds of check (conformance/kinds.py), also readable here
RECORD_KEY = "klconf_record"
FRAMEWORK_KEY = "klconf_framework"
MARKERS = {
    **{fw: f"checks of {fw} APIs" for fw in frameworks.KNOWN},
    **{d: f"checks on the {d} device" for d in frameworks.DEVICES},
    **{d: f"checks in {d}" for d in DTYPES},
}


def pytest_addoption(parser):
    group = parser.getgroup("klconf", "klconf conformance checks")
    group.addoption("--klconf-cases", default=None, help="case file or directory (default: the bundled cases/)")
    group.addoption(
        "--klconf-framework",
        action="append",
        default=[],
        metavar="NAME",
        help=f"only these frameworks ({', '.join(frameworks.FRAMEWORKS)}); repeatable",
    )
    group.addoption(
        "--klconf-api",
        action="append",
        default=[],
        metavar="MODULE:OBJECT",
        help="also check the Api entries this names (a third-party implementation); repeatable",
    )
    group.addoption(
        "--klconf-only-plugins",
        action="store_true",
        help="check only the --klconf-api entries, not the built-in frameworks",
    )
    group.addoption(
        "--klconf-device",
        action="append",
        default=[],
        choices=frameworks.DEVICES,
        help="only these devices (default: all; a device a framework lacks is a skip)",
    )
    group.addoption("--klconf-dtype", action="append", default=[], choices=DTYPES, help="only these dtypes")
    group.addoption("--klconf-results", default=None, metavar="PATH", help="write JSON-lines results here")
    group.addoption(
        "--klconf-timeout",
        type=float,
        default=isolation.DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="time limit for one framework call (0: none); a hang becomes a `timeout` record",
    )
    group.addoption(
        "--klconf-expectations",
        default=None,
        metavar="DIR",
        help="expectations manifests (default: cases/expectations; 'none' to report raw verdicts)",
    )
    sharding.add_options(group)


def pytest_configure(config):
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")
    config.addinivalue_line("markers", "klconf: a klconf conformance check")
    path = config.getoption("klconf_results", None)
    is_worker = hasattr(config, "workerinput")
    sharding.configure(config)
    isolation.configure(
        config.getoption("klconf_timeout", None), isolation.hung_marker(path) if path else None, hard=is_worker
    )
    isolation.install_interrupt_handlers()  # the user's Ctrl-C or SIGTERM ends the run, an API's KeyboardInterrupt not
    if path and not is_worker:  # the xdist controller, or plain pytest, writes
        config.pluginmanager.register(ResultsFile(path, _corpus_hash(config), config), "klconf-results")


def _selected_apis(config) -> list[frameworks.Api]:
    cached = getattr(config, "_klconf_apis", None)
    if cached is None:
        names = config.getoption("klconf_framework") or list(frameworks.FRAMEWORKS)
        cached = (
            []
            if config.getoption("klconf_only_plugins")
            else frameworks.builtin_apis([n for n in names if n in frameworks.FRAMEWORKS])
        )
        for spec in config.getoption("klconf_api"):
            try:
                cached += frameworks.load_plugin(spec)
            except Exception as exc:
                raise pytest.UsageError(f"--klconf-api {spec}: {type(exc).__name__}: {exc}") from None
        config._klconf_apis = cached
    return cached


def _cases(config) -> list[cases_mod.Case]:
    cached = getattr(config, "_klconf_cases", None)
    if cached is None:
        try:
            cached = cases_mod.load_cases(config.getoption("klconf_cases"))
        except cases_mod.CaseFileError as exc:
            raise pytest.UsageError(f"invalid case files:\n{exc}") from None
        config._klconf_cases = cached
    return cached


def manifest(config) -> expectations.Manifest | None:
    """Known failures, expanded against every built-in API (and plug-ins) so a filtered run still validates them."""
    if not hasattr(config, "_klconf_manifest"):
        where = config.getoption("klconf_expectations", None)
        if where == "none":
            config._klconf_manifest = None
        else:
            apis = frameworks.builtin_apis() + [a for a in _selected_apis(config) if a.framework == "numpy"]
            loaded = expectations.load(where, _cases(config), apis)
            if loaded.problems:
                raise pytest.UsageError("invalid expectations manifest:\n" + "\n".join(map(str, loaded.problems)))
            config._klconf_manifest = loaded
    return config._klconf_manifest


def _corpus_hash(config) -> str:
    return cases_mod.corpus_hash(_cases(config))


def _devices(config) -> list[str]:
    return config.getoption("klconf_device") or list(frameworks.DEVICES)


def scope(config) -> kinds.Scope:
    """What this run's options select, for every kind's planner; built once per run."""
    cached = getattr(config, "_klconf_scope", None)
    if cached is None:
        names = config.getoption("klconf_framework") or list(frameworks.FRAMEWORKS)
        cached = kinds.Scope(
            cases_root=config.getoption("klconf_cases"),
            cases=_cases(config),
            apis=_selected_apis(config),
            frameworks=list(names),
            devices=_devices(config),
            dtypes=config.getoption("klconf_dtype") or list(DTYPES),
            porting_targets=list(names),
        )
        config._klconf_scope = cached
    return cached


def selected_checks(config, fixture: str = "klconf_check") -> list:
    """The checks of one kind (named by its fixture) this run selects; planned once per run."""
    plans = config.__dict__.setdefault("_klconf_plans", {})
    if fixture not in plans:
        kind = kinds.by_fixture([fixture])
        assert kind is not None, f"no kind of check has the fixture {fixture}"
        try:
            planned = kind.plan(scope(config))
        except cases_mod.CaseFileError as exc:
            raise pytest.UsageError(f"invalid {kind.name} case files:\n{exc}") from None
        plans[fixture] = device_skips.without_absent(
            config, kind, planned, _devices(config), _pytest_id, scope(config).frameworks
        )
    return plans[fixture]


def pytest_generate_tests(metafunc):
    kind = kinds.by_fixture(metafunc.fixturenames)
    if kind is None:
        return
    params = []
    for c in selected_checks(metafunc.config, kind.fixture):
        marks = [getattr(pytest.mark, kinds.framework_of(c)), getattr(pytest.mark, c.device), pytest.mark.klconf]
        if c.dtype in DTYPES:
            marks.append(getattr(pytest.mark, c.dtype))
        params.append(pytest.param(c, id=_pytest_id(c), marks=marks))
    metafunc.parametrize(kind.fixture, params)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
    """A kind with no check in this selection (gradients of SciPy alone) is parametrized with nothing, which
    pytest turns into one placeholder item; it is no check, so it is neither planned, run nor recorded."""
    placeholders = [item for item in items if _is_placeholder(item)]
    if placeholders:
        config.hook.pytest_deselected(items=placeholders)
        items[:] = [item for item in items if not _is_placeholder(item)]


def _is_placeholder(item) -> bool:
    params = getattr(getattr(item, "callspec", None), "params", {})
    kind = kinds.by_fixture(params)
    return kind is not None and not hasattr(params[kind.fixture], "id")


def _pytest_id(check) -> str:
    """The check id without '::' (which pytest reads as a node separator) and with () for options."""
    return check.id.replace("::", "-").replace("[", "(").replace("]", ")")


_announced: set[str] = set()  # frameworks whose information this process has sent


def pytest_runtest_setup(item):
    isolation.running(item.nodeid)


@pytest.fixture
def klconf_record(request):
    """Call with a Record: it goes to the results file and decides the test's outcome."""

    known = manifest(request.config)

    def record(rec: Record) -> None:
        if known is not None:
            rec = known.apply(rec)
        if rec.framework_version and rec.framework not in _announced:
            _announced.add(rec.framework)
            info = jsonable(framework_info(rec.framework))
            request.node.user_properties.append((FRAMEWORK_KEY, json.dumps(info, allow_nan=False)))
        request.node.user_properties.append((RECORD_KEY, json.dumps(rec.to_json(), allow_nan=False)))
        outcome(rec)

    return record


def outcome(rec: Record) -> None:
    if rec.verdict == "pass":
        return  # (a stale expectation is reported in the record and the summary, not as a failure)
    if rec.verdict in ("skip", "unsupported"):
        pytest.skip(f"{rec.verdict}: {rec.reason}")
    if rec.verdict == "xfail":
        # pytest.xfail() would have pytest render the call stack with its source (about 40 ms a check, a
        # minute of a main job's 3,000 known failures); the record holds all there is to say
        raise pytest.xfail.Exception(rec.reason, pytrace=False)
    text = f"{rec.verdict} ({rec.kind}): {rec.message}"
    if rec.diagnosis:
        text += f"\n  diagnosis: {rec.diagnosis}"
    if rec.convention:
        text += f"\n  declared convention: {rec.convention}"
    pytest.fail(text, pytrace=False)


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
        known = manifest(self.config)
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
                self._by_node[kind.name] = {_pytest_id(c): c for c in selected_checks(self.config, kind.fixture)}
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
        for kind in KINDS:
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
