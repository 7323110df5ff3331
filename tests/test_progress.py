"""The progress display of `klconf run`: counts, ETA and the slowest work, plain where not a terminal."""

import io
import json
from types import SimpleNamespace

from conformance.progress import Progress, State, format_seconds, short_id
from tests.test_cli import klconf


def test_state_counts_verdicts_and_estimates_the_time_left():
    state = State(planned=10, started=0.0)
    for i in range(4):
        state.start(f"t[{i}]", now=float(i))
    state.finish("t[0]", "pass")
    state.finish("t[1]", "fail")
    # 2 done in 10 s: 8 left at 5 s each
    assert state.eta_s(10.0) == 40.0
    assert state.slowest(10.0) == ("t[2]", 8.0)
    line = state.line(10.0)
    assert line.startswith("2/10 checks (20%)")
    assert "1 pass" in line and "1 fail" in line and "ETA 40s" in line and "slowest now: 2 (8s)" in line


def test_no_estimate_before_the_plan_or_the_first_check_is_known():
    assert State(planned=None).eta_s(5.0) is None
    assert State(planned=3, started=0.0).eta_s(5.0) is None
    assert State(planned=None, started=0.0).line(1.0) == "0/? checks"


def test_plain_mode_writes_a_line_per_tenth_not_per_check():
    out, now = io.StringIO(), [0.0]
    progress = Progress(live=False, stream=out, clock=lambda: now[0])
    progress.pytest_collection_finish(SimpleNamespace(items=[None] * 100))
    for i in range(100):
        now[0] += 0.1
        record = json.dumps({"verdict": "pass" if i % 10 else "xfail"})
        report = SimpleNamespace(
            when="call", nodeid=f"t[{i}]", outcome="passed", passed=True, user_properties=[("klconf_record", record)]
        )
        progress.pytest_runtest_logreport(report)
    progress.pytest_sessionfinish(None, 0)
    lines = out.getvalue().splitlines()
    assert 10 <= len(lines) <= 12, lines
    assert lines[-1].startswith("klconf: 100/100 checks (100%), 90 pass, 10 xfail")


def test_a_dead_worker_counts_as_a_crash():
    progress = Progress(live=False, stream=io.StringIO(), clock=lambda: 0.0)
    progress.pytest_runtest_logreport(
        SimpleNamespace(when="???", nodeid="t[0]", outcome="failed", passed=False, user_properties=[])
    )
    assert progress.state.verdicts == {"crash": 1}


def test_helpers_format_durations_and_ids():
    assert format_seconds(59) == "59s" and format_seconds(61) == "1m01s" and format_seconds(3700) == "1h01m"
    assert short_id("tests/x.py::test_value[case-api-cpu]") == "case-api-cpu"
    assert len(short_id("x[" + "a" * 200 + "]")) == 70


def test_klconf_run_reports_progress_on_standard_error(tmp_path):
    proc = klconf(
        "run",
        "--api",
        "tests.fakes:plugin_apis",
        "--only-api",
        "--out",
        str(tmp_path),
        "--no-report",
        "-k",
        "test_value and (one-row-1d or sequence)",
        "-n",
        "0",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = [line for line in proc.stderr.splitlines() if line.startswith("klconf: ")][-1]
    checks = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    done = sum(1 for e in checks if e["type"] == "check")
    assert last.startswith(f"klconf: {done}/{done} checks (100%)"), proc.stderr
