"""`klconf diff`: regressions, improvements, added and removed checks, value drift and convention changes;
end to end against a run with an implementation planted to return KL x 1.001."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.cli import main
from conformance.report import diff, model
from conformance.results import read
from tests.test_report_records import HOSTILE, convention, failing, record, write_results

ROOT = Path(__file__).resolve().parent.parent


def _runset(tmp_path, name, records):
    return model.load([write_results(tmp_path / name, records)])


def _ids(changes):
    return {c.check_id for c in changes}


def test_categories(tmp_path):
    stays = record(case="stays")
    breaks, heals = record(case="breaks"), failing(case="heals")
    gone, crashed = record(case="gone"), failing(case="crashes")
    skipped_then_fails = record(case="newly-run", verdict="skip", reason="no device")
    base = _runset(tmp_path, "base.jsonl", [stays, breaks, heals, gone, crashed, skipped_then_fails])
    new = _runset(
        tmp_path,
        "new.jsonl",
        [
            stays,
            failing(case="breaks"),
            record(case="heals"),
            record(case="added"),
            record(case="crashes", verdict="crash", message="worker died"),
            failing(case="newly-run"),
        ],
    )
    d = diff.compare(base, new)
    assert _ids(d.of("regression")) == {breaks.check_id, skipped_then_fails.check_id}
    assert _ids(d.of("improvement")) == {heals.check_id}
    assert _ids(d.of("added")) == {record(case="added").check_id}
    assert _ids(d.of("removed")) == {gone.check_id}
    assert _ids(d.of("changed")) == {crashed.check_id}
    assert d.unchanged == 1 and d.regressed
    regression = next(c for c in d.of("regression") if c.check_id == breaks.check_id)
    assert regression.detail.startswith("pass → fail (value)") and "rel 0.001" in regression.detail


def test_value_moving_beyond_tolerance_is_a_regression_even_when_both_pass(tmp_path):
    base = _runset(
        tmp_path,
        "b.jsonl",
        [
            record(case="a", observed=[0.5, 0.25], tolerance=1e-6),
            record(case="b", observed=[0.5, 0.25], tolerance=1e-6),
            record(case="c", observed={"shape": [4, 100], "sample": [0.1, 0.2]}, tolerance=1e-6),
            record(case="d", observed=[0.5, "inf"], tolerance=1e-6),
        ],
    )
    new = _runset(
        tmp_path,
        "n.jsonl",
        [
            record(case="a", observed=[0.5, 0.25 + 5e-6], tolerance=1e-6),
            record(case="b", observed=[0.5, 0.25 + 5e-7], tolerance=1e-6),
            record(case="c", observed={"shape": [4, 100], "sample": [0.1, 0.2 + 1e-5]}, tolerance=1e-6),
            record(case="d", observed=[0.5, "nan"], tolerance=1e-6),
        ],
    )
    d = diff.compare(base, new)
    moved = {c.check_id.split("::")[0]: c for c in d.of("regression")}
    assert set(moved) == {"a", "c", "d"}
    assert "5 × tolerance" in moved["a"].detail and "both runs within their own tolerance" in moved["a"].detail
    assert "non-finite" in moved["d"].detail
    assert all(c.what == "value" for c in moved.values())


def test_changed_inferred_convention_is_a_regression(tmp_path):
    base = _runset(tmp_path, "b.jsonl", [convention(), convention(api="optax.kl_divergence", framework="jax")])
    new = _runset(
        tmp_path,
        "n.jsonl",
        [convention(), convention(api="optax.kl_divergence", framework="jax", inferred={"zero_both": "0"})],
    )
    d = diff.compare(base, new)
    [change] = d.of("regression")
    assert change.api == "optax.kl_divergence" and "zero_both nan → 0" in change.detail


def test_formats_and_exit_status(tmp_path, capsys):
    base = write_results(tmp_path / "b.jsonl", [record(case="x"), record(case=HOSTILE)])
    new = write_results(tmp_path / "n.jsonl", [failing(case="x"), record(case=HOSTILE)])
    assert main(["diff", str(base), str(base)]) == 0
    assert "no regressions" in capsys.readouterr().out
    assert main(["diff", str(base), str(new)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSIONS (1)" in out and "x::torch.nn.functional.kl_div[reduction=sum]::cpu::float32" in out
    assert main(["diff", str(base), str(new), "--format", "json", "--out", str(tmp_path / "d.json")]) == 1
    data = json.loads((tmp_path / "d.json").read_text())
    assert data["regressed"] and data["counts"]["regression"] == 1 and data["counts"]["unchanged"] == 1
    assert data["regressions"][0]["base_verdict"] == "pass" and data["regressions"][0]["new_verdict"] == "fail"
    assert main(["diff", str(new), str(base), "--format", "html", "--out", str(tmp_path / "d.html")]) == 0
    page = (tmp_path / "d.html").read_text()
    assert "Improvement (1)" in page and "No regressions" in page and "<script>alert" not in page


def _klconf(*args):
    env = {**os.environ, "KLCONF_CACHE_DIR": "off"}
    return subprocess.run(
        [sys.executable, "-m", "conformance", *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=600
    )


@pytest.fixture(scope="module")
def clean_and_planted(tmp_path_factory):
    """One run of fakes.EXACT, and one of the same API planted to return KL x 1.001 for reduction=sum."""
    tmp = tmp_path_factory.mktemp("planted")
    # value checks only: property checks compare reductions with each other, so a planted sum breaks them too
    select = ("-k", "test_value and (canonical-2x3 or dirichlet-8x5 or asymmetric-1x3 or sequence-2x3x5)")
    runs = {}
    for name, spec in (("clean", "tests.fakes:plugin_apis"), ("planted", "tests.test_diff_fakes:planted_apis")):
        proc = _klconf("run", "--api", spec, "--only-api", "--no-report", "--out", str(tmp / name), *select)
        assert proc.returncode in (0, 1), proc.stdout + proc.stderr
        runs[name] = tmp / name / "results.jsonl"
    return runs["clean"], runs["planted"]


def test_diff_names_exactly_the_planted_checks(clean_and_planted, tmp_path):
    clean, planted = clean_and_planted
    base = read(clean)
    planted_ids = {r.check_id for r in base.records if r.options == {"reduction": "sum"} and r.verdict == "pass"}
    assert len(planted_ids) >= 8  # four cases in float32 and float64
    proc = _klconf("diff", str(clean), str(planted), "--format", "json", "--out", str(tmp_path / "diff.json"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "diff.json").read_text())
    assert {c["check_id"] for c in data["regressions"]} == planted_ids
    assert all(c["what"] == "verdict" and "1.001" in c["detail"] for c in data["regressions"])
    assert data["counts"] == {
        "regression": len(planted_ids),
        "improvement": 0,
        "changed": 0,
        "added": 0,
        "removed": 0,
        "unchanged": len(base.records) - len(planted_ids),
    }
    assert _klconf("diff", str(clean), str(clean)).returncode == 0
    text = _klconf("diff", str(clean), str(planted)).stdout
    assert f"REGRESSIONS ({len(planted_ids)})" in text
