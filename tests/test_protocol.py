"""How pytest runs a klconf check (conformance/protocol.py): without pytest's per-phase machinery, yet with
the same records, the same pytest outcomes and the same reports as pytest's standard protocol gives."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from conformance import results

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "KLCONF_CACHE_DIR": "off"}

# fake.scaled_1.001 fails every value check; its `sum` ones are known failures (xfail); neither fake takes
# float16 (unsupported); the float32 and float64 checks of fake.exact pass
KNOWN = """\
expectations:
  - id: scaled-sums
    status: bug
    kind: value
    reason: the fake scales its output on purpose
    checks:
      check: value
      api: fake.scaled_1.001
      case: [canonical-2x3, forum-example]
      dtype: [float32, float64]
      options: {reduction: [sum]}
"""
SELECT = [
    "run",
    "--api",
    "tests.fakes:EXACT",
    "--api",
    "tests.fakes:SCALED",
    "--only-api",
    "--check",
    "value",
    "--check",
    "property",
    "-k",
    "canonical or forum",
    "--dtype",
    "float16",
    "--dtype",
    "float32",
    "--dtype",
    "float64",
    "--no-report",
    "--no-progress",
]


def _run(tmp_path: Path, name: str, *extra: str, workers: str = "0") -> tuple[results.Run, dict, str]:
    """One run: its results, each test's outcome in pytest's JUnit XML, and its output."""
    (tmp_path / "known").mkdir(exist_ok=True)
    (tmp_path / "known" / "scaled.yaml").write_text(KNOWN)
    out = tmp_path / name
    argv = [*SELECT, "-n", workers, "--expectations", str(tmp_path / "known"), "--out", str(out)]
    argv += ["--", f"--junitxml={tmp_path / (name + '.xml')}", *extra]
    proc = subprocess.run(
        [sys.executable, "-m", "conformance", *argv], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr  # fake.scaled's unexpected failures fail the run
    outcomes = {}
    for case in ET.parse(tmp_path / (name + ".xml")).getroot().iter("testcase"):
        found = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        skipped = case.find("skipped")
        if skipped is not None and skipped.get("type") == "pytest.xfail":
            found = ["xfail"]
        # whether JUnit XML has the test's record among its properties (read from the report that carries them)
        recorded = any(p.get("name") == "klconf_record" for p in case.iter("property"))
        outcomes[case.get("name")] = (found[0] if found else "passed", recorded)
    return results.read(out / "results.jsonl"), outcomes, proc.stdout


def _comparable(run: results.Run) -> dict:
    return {r.check_id: (r.verdict, r.kind, r.expected, r.observed, r.reason, r.message) for r in run.records}


def test_checks_run_without_the_phases_and_report_as_the_standard_protocol_does(tmp_path):
    lean, lean_outcomes, lean_out = _run(tmp_path, "lean")
    # --setup-show asks pytest to show each item's fixtures: the standard protocol, through the test functions
    standard, standard_outcomes, standard_out = _run(tmp_path, "standard", "--setup-show")
    assert "SETUP" in standard_out and "SETUP" not in lean_out  # the two runs took different protocols
    verdicts = {r.verdict for r in lean.records}
    assert verdicts >= {"pass", "fail", "xfail", "unsupported"}, verdicts
    assert _comparable(lean) == _comparable(standard)
    assert lean.end["complete"] and lean.end["planned"] == len(lean.records)
    assert lean_outcomes == standard_outcomes and len(lean_outcomes) == len(lean.records)
    assert all(recorded for _, recorded in lean_outcomes.values())
    counts = {v: sum(r.verdict == v for r in lean.records) for v in verdicts}
    found_outcomes = [found for found, _ in lean_outcomes.values()]
    told = {o: found_outcomes.count(o) for o in ("passed", "failure", "xfail", "skipped")}
    assert told == {
        "passed": counts["pass"],
        "failure": counts["fail"],
        "xfail": counts["xfail"],
        "skipped": counts["unsupported"],
    }, (told, counts)
    summary = lean_out.strip().splitlines()[-1]
    assert summary.split(" in ")[0] == standard_out.strip().splitlines()[-1].split(" in ")[0], summary
    assert f"{counts['fail']} failed" in summary and f"{counts['xfail']} xfailed" in summary, summary


def test_workers_run_checks_the_same_way(tmp_path):
    one, one_outcomes, _ = _run(tmp_path, "one")
    two, two_outcomes, _ = _run(tmp_path, "two", workers="2")
    assert _comparable(one) == _comparable(two) and one_outcomes == two_outcomes


def test_a_failure_outside_the_checks_guard_is_an_error_record_of_that_check(tmp_path):
    """klconf's own bug (here: a runner that raises past its guard) fails the item with its traceback, and
    the check gets one `error` record saying so; every other check still runs and is recorded."""
    lean, outcomes, _ = _run(tmp_path, "broken", "-p", "tests.broken_runner")
    broken = [r for r in lean.records if r.verdict == "error"]
    assert broken and all(r.kind == "internal" and r.api == "fake.exact" and r.check == "value" for r in broken)
    assert all("RuntimeError: planted" in r.message and "Traceback" in r.message for r in broken)
    assert lean.end["planned"] == len(lean.records) == len({r.check_id for r in lean.records})
    failures = sum(found == "failure" for found, _ in outcomes.values())
    assert failures == sum(r.verdict in ("error", "fail") for r in lean.records)


def test_an_items_location_is_the_one_pytest_computes(tmp_path):
    """The lean protocol shares one test function's file and line among its items (`protocol._location`):
    each item's location is still the one pytest's own `Item.location` gives it."""
    import pytest

    from conformance import cli, protocol

    class Collected:
        items: list = []

        def pytest_collection_finish(self, session):
            Collected.items = list(session.items)

    argv = ["--pyargs", "conformance.checks.test_values", "conformance.checks.test_properties", "--collect-only"]
    argv += ["-q", "-p", "no:cacheprovider", "--klconf-api", "tests.fakes:EXACT", "--klconf-only-plugins"]
    if not cli._plugin_autoloaded():  # as `klconf run` decides
        argv += ["-p", "conformance.plugin"]
    assert pytest.main(argv, plugins=[Collected()]) == 0
    items = Collected.items
    assert len({item.originalname for item in items}) == 2 and len(items) > 10
    shared = [protocol._location(item) for item in items]
    assert all("location" in item.__dict__ for item in items[1:] if item.originalname == items[0].originalname)
    for item, location in zip(items, shared):
        del item.__dict__["location"]
        assert location == item.location, item.nodeid


def test_a_klconf_run_skips_pytests_final_garbage_collections_unless_asked():
    """`klconf run` ends without pytest's two full collections (seconds in a process holding three
    frameworks); a run that set the number of collections keeps its own."""
    from types import SimpleNamespace

    from _pytest.stash import Stash
    from _pytest.unraisableexception import gc_collect_iterations_key

    from conformance import plugin

    plain, asked = SimpleNamespace(stash=Stash()), SimpleNamespace(stash=Stash())
    asked.stash[gc_collect_iterations_key] = 3
    for config in (plain, asked):
        plugin._no_final_collections(config)
    assert plain.stash[gc_collect_iterations_key] == 0 and asked.stash[gc_collect_iterations_key] == 3
