"""Faults in real processes: each becomes its own verdict, the run completes, nothing is lost."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conformance import cases, gradients, properties, results, runner
from tests import faulty

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "KLCONF_CACHE_DIR": "off", "PYTHONFAULTHANDLER": ""}


def klconf(*args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "conformance", *args],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def test_every_fault_kind_gets_its_own_verdict_and_the_run_completes(tmp_path):
    # a crash and a hard hang in a convention check and in a porting check too: attributed to their own kind
    elsewhere = "conventions-faulty.segfaults or porting-to-scipy-faulty.exits or conventions-faulty.hangs_hard"
    proc = klconf(
        "run",
        "--api",
        "tests.faulty:ALL",
        "--only-api",
        "--out",
        str(tmp_path),
        "--no-report",
        "-k",
        f"canonical-2x3 or forum-example or {elsewhere}",
        "--dtype",
        "float64",
        "--device",
        "cpu",
        "--timeout",
        "2",
        "-n",
        "2",
    )
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out
    run = results.read(tmp_path / "results.jsonl")
    assert run.problems == [] and run.complete and not run.end["interrupted"] and run.end["complete"]
    by_api = {}
    for r in run.records:
        by_api.setdefault(r.api, set()).add((r.verdict, r.kind))
    assert by_api == {api: {expected} for api, expected in faulty.EXPECTED.items()}
    chosen = [c for c in cases.load_cases() if c.id in ("canonical-2x3", "forum-example")]
    started = (
        sum(
            len(planner(chosen, faulty.ALL, devices=["cpu"], dtypes=["float64"]))
            for planner in (runner.plan, properties.plan, gradients.plan)
        )
        + 3
    )
    assert len(run.records) == started == run.end["planned"] == len({r.check_id for r in run.records})
    crash = next(r for r in run.records if r.api == "faulty.segfaults" and r.check == "value")
    assert "crashed" in crash.message and crash.case_id in ("canonical-2x3", "forum-example")
    other = {(r.check, r.api): r for r in run.records if r.check in ("convention", "porting")}
    assert {key: (r.verdict, r.case_id) for key, r in other.items()} == {
        ("convention", "faulty.segfaults"): ("crash", "conventions"),
        ("porting", "faulty.exits"): ("crash", "porting-to-scipy"),
        ("convention", "faulty.hangs_hard"): ("timeout", "conventions"),
    }
    assert "ended after the 2 s time limit" in other[("convention", "faulty.hangs_hard")].message


KNOWN_HARD_HANG = """\
expectations:
  - id: faulty-hangs-outside-python
    status: bug
    kind: timeout
    reason: the fake spins outside Python on purpose
    checks:
      check: convention
      api: faulty.hangs_hard
"""


def test_a_died_worker_that_its_expectation_explains_leaves_the_run_green(tmp_path):
    manifests = tmp_path / "expectations"
    manifests.mkdir()
    (manifests / "faulty.yaml").write_text(KNOWN_HARD_HANG)
    common = ["run", "--api", "tests.faulty:ALL", "--only-api", "--no-report", "--timeout", "2", "-n", "2"]
    selection = ["-k", "conventions-faulty.hangs_hard or conventions-fake.exact", "--device", "cpu"]
    proc = klconf(*common, *selection, "--expectations", str(manifests), "--out", str(tmp_path / "known"))
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    run = results.read(tmp_path / "known" / "results.jsonl")
    verdicts = {r.api: (r.verdict, r.extra.get("failed_as")) for r in run.records}
    assert verdicts == {"faulty.hangs_hard": ("xfail", "timeout"), "fake.exact": ("pass", None)}, verdicts
    assert run.end["exitstatus"] == 0 and run.end["complete"]
    # the same hang unexplained fails the run
    proc = klconf(*common, *selection, "--expectations", "none", "--out", str(tmp_path / "raw"))
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out
    raw = results.read(tmp_path / "raw" / "results.jsonl")
    assert {r.api: r.verdict for r in raw.records}["faulty.hangs_hard"] == "timeout"


def test_interrupted_run_keeps_its_results(tmp_path):
    path = tmp_path / "results.jsonl"
    proc = klconf(
        "run",
        "--api",
        "tests.faulty:SLOW",
        "--only-api",
        "--out",
        str(tmp_path),
        "--no-report",
        "--dtype",
        "float64",
        "-n",
        "0",
        "-k",
        "test_value",
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count('"type":"check"') >= 3:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    run = results.read(path)
    assert len(run.records) >= 3 and run.problems == []
    assert run.end is not None and run.end["interrupted"] and not run.end["complete"]
    assert all(r.verdict == "pass" for r in run.records)
    never_ran = run.end["not_run"]  # the checks the user's interrupt stopped, by id
    assert never_ran and len(run.records) + len(never_ran) == run.end["planned"]
    assert not {r.check_id for r in run.records} & set(never_ran)
    assert all("faulty.slow" in check_id for check_id in never_ran)
    assert f"incomplete: {len(never_ran)} planned checks never ran" in out
    report = klconf("report", str(path), "--out", str(tmp_path / "html"))
    report.communicate(timeout=120)
    assert report.returncode == 0
    page = (tmp_path / "html" / "index.html").read_text()
    assert "Incomplete run:" in page and f"{len(never_ran)} of {run.end['planned']} planned checks never ran" in page


def test_reader_tolerates_a_torn_last_line(tmp_path):
    path = tmp_path / "results.jsonl"
    good = {
        "type": "check",
        "check_id": "a",
        "case_id": "c",
        "case_hash": "h",
        "api": "x",
        "framework": "numpy",
        "device": "cpu",
        "dtype": "float64",
        "options": {},
        "verdict": "pass",
    }
    path.write_text(json.dumps(results.run_header()) + "\n" + json.dumps(good) + "\n" + json.dumps(good)[:40])
    run = results.read(path)
    assert len(run.records) == 1 and not run.complete
    assert len(run.problems) == 1 and "torn last line" in run.problems[0]


def test_a_run_ends_without_leaking_its_output_scratch_files(tmp_path):
    """Every API call's output goes to scratch files made once per process; a run closes them as it
    ends, where they were left to the interpreter, which reported each as an unclosed-file ResourceWarning
    (here shown by PYTHONWARNINGS; a plain klconf run printed them too)."""
    args = ["--api", "tests.faulty:NUMPY_APIS", "--only-api", "--out", str(tmp_path), "--no-report", "--no-progress"]
    args += ["--check", "value", "-k", "forum-example and faulty.fd1_write", "--dtype", "float64", "-n", "0"]
    proc = subprocess.run(
        [sys.executable, "-m", "conformance", "run", *args],
        cwd=ROOT,
        env={**ENV, "PYTHONWARNINGS": "default::ResourceWarning"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    run = results.read(tmp_path / "results.jsonl")
    assert run.complete and run.records and all(r.verdict == "pass" for r in run.records), proc.stdout
    assert "ResourceWarning" not in proc.stdout + proc.stderr
