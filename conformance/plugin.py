"""The pytest plugin: options, markers, parametrization and the results file.

Parametrization is case x API x options x device x dtype, with one marker per
framework, device and dtype, so `-m "torch and float16"` or `-k kl_div` select
naturally. Records travel from the process that ran a check to the one that writes the
results file through `report.user_properties`, so the file is written by one process
(the pytest-xdist controller, or pytest itself) one line per completed check.
"""
from __future__ import annotations

import importlib
import json
import os
import signal
import threading

import pytest

from . import cases as cases_mod
from . import coverage, expectations, frameworks, isolation
from .dtypes import DTYPES
from .results import Record, Writer, jsonable, run_header
from .runner import framework_info

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
    group.addoption("--klconf-framework", action="append", default=[], metavar="NAME",
                    help=f"only these frameworks ({', '.join(frameworks.FRAMEWORKS)}); repeatable")
    group.addoption("--klconf-api", action="append", default=[], metavar="MODULE:OBJECT",
                    help="also check the Api entries this names (a third-party implementation); repeatable")
    group.addoption("--klconf-only-plugins", action="store_true",
                    help="check only the --klconf-api entries, not the built-in frameworks")
    group.addoption("--klconf-device", action="append", default=[], choices=frameworks.DEVICES,
                    help="only these devices (default: all; a device a framework lacks is a skip)")
    group.addoption("--klconf-dtype", action="append", default=[], choices=DTYPES, help="only these dtypes")
    group.addoption("--klconf-results", default=None, metavar="PATH", help="write JSON-lines results here")
    group.addoption("--klconf-timeout", type=float, default=isolation.DEFAULT_TIMEOUT, metavar="SECONDS",
                    help="time limit for one framework call (0: none); a hang becomes a `timeout` record")
    group.addoption("--klconf-expectations", default=None, metavar="DIR",
                    help="expectations manifests (default: cases/expectations; 'none' to report raw verdicts)")


def pytest_configure(config):
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")
    config.addinivalue_line("markers", "klconf: a klconf conformance check")
    path = config.getoption("klconf_results", None)
    is_worker = hasattr(config, "workerinput")
    isolation.configure(config.getoption("klconf_timeout", None),
                        isolation.hung_marker(path) if path else None, hard=is_worker)
    if path and not is_worker:  # the xdist controller, or plain pytest, writes
        config.pluginmanager.register(ResultsFile(path, _corpus_hash(config), config), "klconf-results")
        _terminate_as_interrupt()


def _terminate_as_interrupt() -> None:
    """SIGTERM ends the run like Ctrl-C: pytest finishes the session and the results get their footer."""
    if threading.current_thread() is threading.main_thread():
        def handler(signum, frame):
            raise KeyboardInterrupt(f"signal {signum}")

        signal.signal(signal.SIGTERM, handler)


def _selected_apis(config) -> list[frameworks.Api]:
    cached = getattr(config, "_klconf_apis", None)
    if cached is None:
        names = config.getoption("klconf_framework") or list(frameworks.FRAMEWORKS)
        cached = [] if config.getoption("klconf_only_plugins") else frameworks.builtin_apis(
            [n for n in names if n in frameworks.FRAMEWORKS])
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


_KIND_OF_CHECK = {"Check": "value", "GradientCheck": "gradient", "PropertyCheck": "property"}

# Each parametrized runner asks for one fixture; its planner lists that runner's checks.
PLANNERS = {
    "klconf_check": "conformance.runner:plan",
    "klconf_gradient_check": "conformance.gradients:plan",
    "klconf_property_check": "conformance.properties:plan",
}


def selected_checks(config, fixture: str = "klconf_check") -> list:
    module, _, name = PLANNERS[fixture].partition(":")
    planner = getattr(importlib.import_module(module), name)
    return planner(_cases(config), _selected_apis(config),
                   devices=config.getoption("klconf_device") or frameworks.DEVICES,
                   dtypes=config.getoption("klconf_dtype") or DTYPES)


def pytest_generate_tests(metafunc):
    fixture = next((f for f in PLANNERS if f in metafunc.fixturenames), None)
    if fixture is None:
        return
    checks = selected_checks(metafunc.config, fixture)
    params = [pytest.param(c, id=_pytest_id(c), marks=[getattr(pytest.mark, c.api.framework),
                                                         getattr(pytest.mark, c.device),
                                                         getattr(pytest.mark, c.dtype), pytest.mark.klconf])
              for c in checks]
    metafunc.parametrize(fixture, params)


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
        pytest.xfail(rec.reason)
    text = f"{rec.verdict} ({rec.kind}): {rec.message}"
    if rec.diagnosis:
        text += f"\n  diagnosis: {rec.diagnosis}"
    if rec.convention:
        text += f"\n  declared convention: {rec.convention}"
    pytest.fail(text, pytrace=False)


class ResultsFile:
    """Registered in the process that writes results: one line per completed check."""

    def __init__(self, path: str, corpus_hash: str, config):
        self.writer = Writer(path)
        self.writer.write(run_header(corpus_hash=corpus_hash))
        self.counts: dict[str, int] = {}
        self.frameworks_seen: set[str] = set()
        self.coverage = coverage.Coverage()
        self.config = config
        self.hung = isolation.hung_marker(path)
        self.hung.unlink(missing_ok=True)
        self._by_pytest_id: dict | None = None

    def pytest_runtest_logreport(self, report):
        if report.when == "???" and report.failed:  # pytest-xdist: the worker running this check died
            self._write(self._lost(report))
            return
        if report.when != "call":  # user_properties ride on every phase's report
            return
        for key, value in report.user_properties:
            if key == FRAMEWORK_KEY and value not in self.frameworks_seen:
                self.frameworks_seen.add(value)
                self.writer.write(json.loads(value))
            elif key == RECORD_KEY:
                self._write(json.loads(value))

    def _write(self, event: dict) -> None:
        self.writer.write(event)
        self.counts[event["verdict"]] = self.counts.get(event["verdict"], 0) + 1
        self.coverage.add(event)

    def _lost(self, report) -> dict:
        """A record for a check whose process died: `timeout` if the watchdog noted it, else `crash`."""
        param = report.nodeid.partition("[")[2][:-1]
        check = self._checks().get(param)
        hung = self.hung.exists() and report.nodeid in self.hung.read_text().splitlines()
        verdict = "timeout" if hung else "crash"
        message = (f"the process running this check was ended after the {self.config.getoption('klconf_timeout'):g} s "
                   "time limit (a hang outside Python)" if hung else str(report.longrepr))
        if check is None:
            return {"type": "check", "check_id": report.nodeid, "case_id": "", "case_hash": "", "api": "",
                    "framework": "", "device": "", "dtype": "", "options": {}, "verdict": verdict, "kind": verdict,
                    "message": message}
        rec = Record(check_id=check.id, case_id=check.case.id, case_hash=check.case.hash, api=check.api.name,
                     framework=check.api.framework, device=check.device, dtype=check.dtype, options=check.options,
                     verdict=verdict, kind=verdict, message=message, check=_KIND_OF_CHECK.get(type(check).__name__, "value"))
        known = manifest(self.config)
        return (known.apply(rec) if known else rec).to_json()

    def _checks(self) -> dict:
        if self._by_pytest_id is None:
            self._by_pytest_id = {_pytest_id(c): c for fixture in PLANNERS for c in selected_checks(self.config, fixture)}
        return self._by_pytest_id

    def pytest_sessionfinish(self, session, exitstatus):
        self.writer.write({"type": "end", "exitstatus": int(exitstatus), "counts": self.counts,
                           "interrupted": int(exitstatus) == int(pytest.ExitCode.INTERRUPTED),
                           "coverage": self.coverage.to_json()})
        self.writer.close()

    def pytest_terminal_summary(self, terminalreporter):
        summary = ", ".join(f"{n} {v}" for v, n in sorted(self.counts.items(), key=lambda kv: -kv[1]))
        terminalreporter.write_sep("-", "klconf")
        terminalreporter.write_line(f"{sum(self.counts.values())} checks: {summary or 'none'}")
        brief = coverage.render_brief(self.coverage.to_json())
        if brief:
            terminalreporter.write_line("coverage (details: klconf coverage RESULTS):")
            terminalreporter.write_line("  " + brief.replace("\n", "\n  "))
        terminalreporter.write_line(f"results: {os.path.relpath(self.writer.path)}")
