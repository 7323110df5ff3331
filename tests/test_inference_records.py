"""Convention records (the results contract), the pytest runner module and `klconf conventions`."""

import json
import subprocess
import sys
from pathlib import Path

from conformance.inference import FIELDS
from conformance.inference.records import convention_record
from tests import fakes_conventions as fc

ROOT = Path(__file__).resolve().parent.parent
ENV = {**__import__("os").environ, "KLCONF_CACHE_DIR": "off", "PYTHONPATH": str(ROOT)}


def test_agreeing_declaration_is_a_pass_record():
    rec = convention_record(fc.TORCH_MEAN, {}, "cpu")
    assert (rec.verdict, rec.check, rec.case_id, rec.dtype, rec.kind) == (
        "pass",
        "convention",
        "conventions",
        "float64",
        None,
    )
    assert rec.check_id == "conventions::fake.kl_div_mean[]::cpu::float64"
    assert set(rec.extra) == {"inferred", "declared", "evidence", "disagreements"}
    assert list(rec.extra["inferred"]) == list(FIELDS) and list(rec.extra["declared"]) == list(FIELDS)
    assert set(rec.extra["evidence"]) == set(FIELDS) and rec.extra["disagreements"] == []
    assert rec.extra["declared"]["output_dtype"] is None  # adapters declare no dtype behaviour
    json.dumps(rec.to_json(), allow_nan=False)


def test_disagreement_is_a_failed_record_with_evidence():
    rec = convention_record(fc.DECLARES_BATCHMEAN, {}, "cpu")
    assert rec.verdict == "fail" and rec.kind == "convention"
    assert rec.extra["disagreements"] == ["reduction", "batch_divisor"]
    assert rec.extra["inferred"]["reduction"] == "mean_all" and rec.extra["declared"]["reduction"] == "mean_batch"
    assert "reduction: declared mean_batch, inferred mean_all (mean_all fits 2d[3x4]" in rec.message


def test_missing_device_is_not_a_failure():
    rec = convention_record(fc.TORCH_MEAN, {}, "cuda")
    assert rec.verdict == "unsupported" and "cuda" in rec.reason


def test_pytest_module_writes_convention_records(tmp_path):
    results = tmp_path / "results.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--pyargs",
            "conformance.checks.test_conventions",
            "-p",
            "no:cacheprovider",
            "-q",
            "--klconf-only-plugins",
            "--klconf-api",
            "tests.fakes_conventions:plugin_apis",
            "--klconf-device",
            "cpu",
            f"--klconf-results={results}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the planted wrong declaration fails
    checks = [json.loads(line) for line in results.read_text().splitlines() if '"type":"check"' in line]
    assert {c["api"]: c["verdict"] for c in checks} == {
        "fake.kl_div_mean": "pass",
        "fake.cross_entropy_mean": "pass",
        "fake.declares_batchmean": "fail",
    }
    assert all(
        c["check"] == "convention" and set(c["extra"]) >= {"inferred", "declared", "evidence", "disagreements"}
        for c in checks
    )


def klconf(*args):
    return subprocess.run(
        [sys.executable, "-m", "conformance", *args], cwd=ROOT, capture_output=True, text=True, env=ENV
    )


def test_conventions_command_json_has_exactly_the_fields():
    proc = klconf("conventions", "--api", "tests.fakes_conventions:plugin_apis", "--only-api", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["api"] for r in rows] == ["fake.kl_div_mean", "fake.cross_entropy_mean", "fake.declares_batchmean"]
    assert all(set(r) == set(FIELDS) | {"api", "options"} for r in rows)
    assert rows[0]["reduction"] == "mean_all" and rows[1]["class_axis"] == 1 and rows[0]["clip_epsilon"] is None
    assert "inferred in" in proc.stderr


def test_conventions_command_table_shows_rows_findings_and_timing():
    proc = klconf("conventions", "--api", "tests.fakes_conventions:plugin_apis", "--only-api")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:4] == ["api", "options", "p_argument", "input_space"]
    assert any(line.startswith("fake.cross_entropy_mean") and "mean_batch" in line for line in lines)
    assert "fake.declares_batchmean [] reduction: declared mean_batch, inferred mean_all" in proc.stdout
    assert "3 API calls x options inferred in" in lines[-1]


def test_conventions_in_processes_infer_what_one_process_does_in_the_same_order():
    """Two frameworks (SciPy's APIs and the numpy fakes) in two processes, each a whole framework."""
    args = ("conventions", "--framework", "scipy", "--api", "tests.fakes_conventions:plugin_apis", "--json")
    one, two = klconf(*args, "-n", "0"), klconf(*args, "-n", "2")
    assert one.returncode == two.returncode == 0, one.stderr + two.stderr
    assert json.loads(one.stdout) == json.loads(two.stdout) and len(json.loads(one.stdout)) > 3
    assert "2 processes" in two.stderr and "processes" not in one.stderr


def test_a_split_keeps_frameworks_whole_and_puts_heavy_imports_apart():
    from conformance.discovery_commands import _by_framework
    from conformance.frameworks import builtin_apis

    apis = builtin_apis()
    parts = _by_framework(apis, 2)
    assert len(parts) == 2 and sorted(a.name for p in parts for a in p) == sorted(a.name for a in apis)
    owners = [{a.framework for a in part} for part in parts]
    assert not owners[0] & owners[1]
    assert _by_framework(apis, 1) == [apis] and len(_by_framework(apis, 64)) == len({a.framework for a in apis})


def test_conventions_command_rejects_unknown_framework():
    proc = klconf("conventions", "--framework", "caffe")
    assert proc.returncode == 2 and "unknown framework" in proc.stderr
