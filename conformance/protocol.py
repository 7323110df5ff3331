"""How pytest runs one klconf check: the check's own guard, then its reports, and nothing per phase.

pytest's standard run of an item wraps each of its three phases (setup, call, teardown) in output
capture, warning capture, fixture setup and teardown, a `PYTEST_CURRENT_TEST` environment write and an
exception-to-report translation. A klconf check needs none of it: its runner (`Kind.run`) guards the
check itself (conformance/isolation.py catches whatever the code under test raises, prints, warns or
changes, and a hang), and its one fixture is the planned check pytest parametrized it with. Measured on
28,000 trivial items, the phases cost about 0.2 ms an item (13.9 s against 7.9 s); a run of the whole
corpus has about 28,000 checks.

So `run_check_item` runs a klconf item as pytest's protocol would, minus the phases: it announces the
item (`pytest_runtest_logstart`), runs the check, keeps its record on the item (`keep_record`, as the
`klconf_record` fixture does), and hands pytest's hooks the three reports the standard protocol would
have made (`pytest_runtest_logreport`: the terminal, the results file, pytest-xdist, JUnit XML and
`--maxfail` read them), with the outcome the record's verdict decides (`verdict_outcome`). Whatever
goes wrong outside the check's guard (a bug in klconf) becomes a failed report with its traceback, which
the results file records as an `error` of that check, as it would under the standard protocol.

Items that are not klconf checks, and every item where pytest is asked to show or step through fixtures
(`--setup-show`, `--setup-only`, `--setup-plan`, `--pdb`, `--trace`), run the standard protocol, through
the test functions in conformance/checks/ and the `klconf_record` fixture: the same check and record.
"""

from __future__ import annotations

import json
import time
import traceback
from typing import Any, Literal

import pytest

from . import isolation, kinds
from .results import Record, jsonable
from .results_file import FRAMEWORK_KEY, RECORD_KEY
from .runner import framework_info
from .selection import manifest

# pytest options under which fixtures are shown or a debugger steps in: the standard protocol runs
STANDARD_OPTIONS = ("setupshow", "setuponly", "setupplan", "usepdb", "trace")

Phase = Literal["setup", "call", "teardown"]
Outcome = Literal["passed", "failed", "skipped"]

_PYTEST_OUTCOME: dict[str, Outcome] = {
    "passed": "passed",
    "skipped": "skipped",
    "xfailed": "skipped",
    "failed": "failed",
}

_announced: set[str] = set()  # frameworks whose information this process has sent


def check_of(item: pytest.Item) -> tuple[kinds.Kind, Any] | None:
    """(kind, planned check) of a klconf item, or None for any other item."""
    params = getattr(getattr(item, "callspec", None), "params", None)
    if not params:
        return None
    kind = kinds.by_fixture(params)
    if kind is None or getattr(item, "originalname", None) != kind.test:
        return None
    return kind, params[kind.fixture]


def runs_lean(config: pytest.Config) -> bool:
    return not any(getattr(config.option, name, False) for name in STANDARD_OPTIONS)


def keep_record(config: pytest.Config, item: pytest.Item, rec: Record) -> Record:
    """The record after the run's expectations, on its item's `user_properties` (with the framework's
    information the first time this process records one of its checks): how records reach the process
    that writes the results file (results_file.py)."""
    known = manifest(config)
    if known is not None:
        rec = known.apply(rec)
    if rec.framework_version and rec.framework not in _announced:
        _announced.add(rec.framework)
        info = jsonable(framework_info(rec.framework))
        item.user_properties.append((FRAMEWORK_KEY, json.dumps(info, allow_nan=False)))
    item.user_properties.append((RECORD_KEY, json.dumps(rec.to_json(), allow_nan=False)))
    return rec


def verdict_outcome(rec: Record) -> tuple[str, str]:
    """The pytest outcome a record's verdict decides and the text that goes with it:
    ("passed", ""), ("skipped", reason), ("xfailed", reason) or ("failed", message)."""
    if rec.verdict == "pass":
        return "passed", ""  # (a stale expectation is reported in the record and the summary, not as a failure)
    if rec.verdict in ("skip", "unsupported"):
        return "skipped", f"{rec.verdict}: {rec.reason}"
    if rec.verdict == "xfail":
        return "xfailed", rec.reason or ""
    text = f"{rec.verdict} ({rec.kind}): {rec.message}"
    if rec.diagnosis:
        text += f"\n  diagnosis: {rec.diagnosis}"
    if rec.convention:
        text += f"\n  declared convention: {rec.convention}"
    return "failed", text


def _location(item: pytest.Item) -> tuple[str, int | None, str]:
    """`item.location` (file, line, test name) without pytest's per-item work: the items of one test function
    share its file and line, and each one's name is its own (pytest finds both by inspecting the function, a
    tenth of a millisecond an item). Taken from pytest for an item of each function, where it is checked that
    the name is the item's, and kept on every item as pytest keeps it (`Item.location` is a cached property)."""
    found = item.__dict__.get("location")
    if found is not None:
        return found
    key = (id(item.parent), getattr(item, "originalname", item.name))
    shared = _SHARED_LOCATION.get(key)
    if shared is None:
        real = item.location
        if real[2] == item.name:
            _SHARED_LOCATION[key] = real[:2]
        return real
    item.__dict__["location"] = location = (*shared, item.name)
    return location


_SHARED_LOCATION: dict[tuple[int, str], tuple[str, int | None]] = {}  # (module node, test function) -> file, line


def run_check_item(item: pytest.Item, kind: kinds.Kind, check: Any, upcoming: Any = None) -> None:
    """pytest's protocol for one klconf item without its per-phase machinery (see the module docstring).
    `upcoming`: the planned check of the item this process runs next, if any (`Kind.run`)."""
    ihook, location = item.ihook, _location(item)
    ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=location)
    isolation.running(item.nodeid)
    start, began = time.time(), time.perf_counter()
    try:
        rec = keep_record(item.config, item, kind.run(check, upcoming))
        outcome, text = verdict_outcome(rec)
        if outcome == "xfailed" and item.config.option.runxfail:
            outcome = "failed"  # --runxfail: a known failure is reported as the failure it is
    except Exception:  # klconf's own bug: the standard protocol would report it as the test's failure
        outcome, text = "failed", traceback.format_exc()
    duration, stop = time.perf_counter() - began, time.time()
    keywords: dict[str, Literal[1]] = dict.fromkeys(item.keywords, 1)
    longrepr: tuple[str, int, str] | str | None = None
    extra: dict[str, Any] = {}
    if outcome == "xfailed":
        extra["wasxfail"] = text  # what pytest's skipping plugin marks a known failure with
    elif outcome == "skipped":
        longrepr = (str(item.path), (location[1] or 0) + 1, f"Skipped: {text}")
    elif outcome == "failed":
        longrepr = text
    phases: tuple[tuple[Phase, Outcome, Any, dict[str, Any]], ...] = (
        ("setup", "passed", None, {}),
        ("call", _PYTEST_OUTCOME[outcome], longrepr, extra),
        ("teardown", "passed", None, {}),
    )
    for when, result, repr_, more in phases:
        report = pytest.TestReport(
            item.nodeid,
            location,
            keywords,
            result,
            repr_,
            when,
            duration=duration if when == "call" else 0.0,
            start=start if when == "call" else stop,
            stop=stop,
            user_properties=item.user_properties,
            **more,
        )
        ihook.pytest_runtest_logreport(report=report)
    ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=location)
