"""`klconf run` end to end on plug-in implementations (no framework needed)."""

import json
import subprocess
import sys
from pathlib import Path

from conformance import cli

ROOT = Path(__file__).resolve().parent.parent


def klconf(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "conformance", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "KLCONF_CACHE_DIR": "off"},
    )


def read_events(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_run_with_a_correct_plugin_passes_and_writes_results(tmp_path):
    proc = klconf(
        "run",
        "--api",
        "tests.fakes:plugin_apis",
        "--only-api",
        "--out",
        str(tmp_path),
        "--no-report",
        "-k",
        "forum or canonical or dirichlet-8x5",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    events = read_events(tmp_path / "results.jsonl")
    assert events[0]["type"] == "run" and events[-1]["type"] == "end"
    checks = [e for e in events if e["type"] == "check"]
    assert checks and {c["verdict"] for c in checks} <= {"pass", "unsupported"}
    assert len({c["check_id"] for c in checks}) == len(checks)
    assert all(c["api"] == "fake.exact" and c["framework"] == "numpy" for c in checks)
    passed = [c for c in checks if c["verdict"] == "pass"]
    assert all(c["tolerance"] > 0 and c["abs_error"] is not None and c["duration_s"] >= 0 for c in passed)


def test_run_exits_non_zero_when_a_planted_bug_fails(tmp_path):
    proc = klconf(
        "run", "--api", "tests.fakes:SCALED", "--only-api", "--out", str(tmp_path), "--no-report", "-k", "canonical"
    )
    assert proc.returncode == 1
    checks = [e for e in read_events(tmp_path / "results.jsonl") if e["type"] == "check"]
    assert any(c["verdict"] == "fail" and "1.001" in c["message"] for c in checks)


def test_bad_plugin_spec_is_a_clear_error(tmp_path):
    proc = klconf("run", "--api", "no_such_module_here:thing", "--only-api", "--out", str(tmp_path), "--no-report")
    assert proc.returncode != 0
    assert "no_such_module_here" in proc.stdout + proc.stderr


def test_run_reports_coverage_in_the_results_and_on_request(tmp_path):
    proc = klconf(
        "run",
        "--api",
        "tests.fakes:plugin_apis",
        "--only-api",
        "--out",
        str(tmp_path),
        "--no-report",
        "-k",
        "test_value and (one-row-1d or sequence or zeros-in-p)",
        "-n",
        "0",
    )
    assert proc.returncode == 0, proc.stdout
    assert "coverage (details: klconf coverage RESULTS):" in proc.stdout
    end = read_events(tmp_path / "results.jsonl")[-1]
    entry = end["coverage"]["numpy"]["fake.exact"]
    assert entry["shape_classes"] == ["1d", "2d", "3d"] and "zeros-in-p" in entry["edge_categories"]
    assert entry["options"] == ["reduction=batchmean", "reduction=mean", "reduction=none", "reduction=sum"]
    shown = klconf("coverage", str(tmp_path / "results.jsonl"))
    assert shown.returncode == 0 and "fake.exact" in shown.stdout and "shapes 1d, 2d, 3d" in shown.stdout


def test_run_with_malformed_case_files_lists_every_problem_without_a_traceback(tmp_path):
    (tmp_path / "bad.yaml").write_text(
        "cases:\n  - id: x\n    description: d\n    p: {probs: [[0.5, -0.5]]}\n    q: {probs: [[0.5, 0.5], [1]]}\n"
    )
    proc = klconf("run", "--cases", str(tmp_path), "--out", str(tmp_path / "out"), "--no-report")
    assert proc.returncode == 2
    assert "bad.yaml:4: cases[0].p.probs: negative probabilities" in proc.stderr
    assert "bad.yaml:5: cases[0].q.probs: rows of unequal width" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_run_from_the_repository_root_keeps_the_oracle_disk_cache(tmp_path):
    """klconf's own test configuration switches the cache off for its tests alone, not for a run."""
    env = {k: v for k, v in __import__("os").environ.items() if k != "KLCONF_CACHE_DIR"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance",
            "run",
            "--api",
            "tests.fakes:EXACT",
            "--only-api",
            "--out",
            str(tmp_path / "out"),
            "--no-report",
            "-n",
            "0",
            "-k",
            "wide-3x1000",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**env, "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert list((tmp_path / ".cache" / "klconf" / "oracle").glob("*.npz"))


def test_pytest_machinery_is_off_unless_the_users_pytest_arguments_configure_it(tmp_path):
    parse = cli.build_parser().parse_args
    plain = cli.pytest_arguments(parse(["run"]), tmp_path / "results.jsonl")
    assert "no:logging" in plain and "no:hypothesispytest" in plain and "--assert=plain" in plain
    asked = cli.pytest_arguments(parse(["run", "--", "--log-cli-level=INFO"]), tmp_path / "results.jsonl")
    assert "no:logging" not in asked and asked[-1] == "--log-cli-level=INFO"
    for user in (["--hypothesis-show-statistics"], ["--assert=rewrite"]):
        asked = cli.pytest_arguments(parse(["run", "--", *user]), tmp_path / "results.jsonl")
        assert asked[-1] == user[0]
        assert ("no:hypothesispytest" in asked) == ("hypothesis" not in user[0])
        assert ("--assert=plain" in asked) == ("--assert" not in user[0])


def _unwritable_run(tmp_path, preexec=None):
    return subprocess.run(
        [sys.executable, "-m", "conformance", "run", "--api", "tests.fakes:plugin_apis", "--only-api"]
        + ["--out", str(tmp_path), "--no-report", "-n", "0", "-k", "forum or canonical or dirichlet-8x5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "KLCONF_CACHE_DIR": "off"},
        preexec_fn=preexec,
    )


def test_a_results_file_that_takes_nothing_is_one_clear_error_before_any_check_runs(tmp_path):
    """A results file on a full disk (/dev/full answers every write so) stops the run before it starts."""
    (tmp_path / "results.jsonl").symlink_to("/dev/full")
    proc = _unwritable_run(tmp_path)
    assert proc.returncode == 4, proc.stdout + proc.stderr  # pytest's usage error
    assert f"cannot write {tmp_path / 'results.jsonl'}: No space left on device; no check was run" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr and "INTERNALERROR" not in proc.stdout + proc.stderr


def test_a_results_file_that_fills_up_stops_the_run_with_one_clear_error(tmp_path):
    """The disk fills during the run (here: a file-size limit, with SIGXFSZ ignored so a write fails as on a
    full disk): the run stops at once with one message naming the file and the reason, not pytest's
    internal error, and what was recorded before stays readable."""
    import resource
    import signal

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (24_000, 24_000))

    proc = _unwritable_run(tmp_path, limit_file_size)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 3, text  # stopped: not a verdict on the checks
    assert "INTERNALERROR" not in text and "Traceback" not in text, text
    assert f"cannot write {tmp_path / 'results.jsonl'}: File too large; the run stops here" in text, text
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    complete = [json.loads(line) for line in lines[:-1]]  # (the last line may be cut short by the limit)
    assert complete[0]["type"] == "run" and any(e["type"] == "check" for e in complete)
    assert not any(e["type"] == "end" for e in complete)
