"""The GitHub Actions workflows: actionlint finds nothing, and the conformance workflow's matrix is coherent
(every shard of every suite runs, each uploads its results, one job merges, reports and publishes)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
CONFORMANCE = ROOT / ".github" / "workflows" / "conformance.yml"


def _actionlint() -> str:
    found = shutil.which("actionlint")
    if found is None:
        pytest.skip("actionlint is not installed (pip install -e '.[lint]' brings it where GitHub is reachable)")
    return found


def _lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_actionlint(), str(path)], cwd=path.parent.parent.parent, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[w.name for w in WORKFLOWS])
def test_actionlint_finds_nothing(workflow):
    proc = _lint(workflow)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_a_planted_mistake(tmp_path):
    """The check above can fail: an undefined matrix property and an unknown action input are reported."""
    planted = CONFORMANCE.read_text().replace("${{ matrix.shard }}/$SHARDS", "${{ matrix.shards }}/$SHARDS", 1)
    planted = planted.replace("if-no-files-found: error", "if-no-files-found: error\n          bogus-input: 1", 1)
    target = tmp_path / ".github" / "workflows" / "conformance.yml"
    target.parent.mkdir(parents=True)
    target.write_text(planted)
    proc = _lint(target)
    assert proc.returncode != 0
    assert "bogus-input" in proc.stdout


def _workflow() -> dict:
    data = yaml.safe_load(CONFORMANCE.read_text())
    return data


def _run_lines(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_the_matrix_runs_every_shard_of_every_suite():
    flow = _workflow()
    shards = int(flow["env"]["SHARDS"])
    cpu = flow["jobs"]["cpu"]
    matrix = cpu["strategy"]["matrix"]
    assert matrix["shard"] == list(range(1, shards + 1))
    assert {s["name"] for s in matrix["suite"]} >= {"torch", "jax", "tensorflow", "scipy", "porting"}
    assert len(matrix["release"]) >= 2 and cpu["strategy"]["fail-fast"] is False
    assert '--shard "$SHARD/$SHARDS"' in _run_lines(cpu) and "--device cpu" in _run_lines(cpu)
    gpu = flow["jobs"]["gpu"]
    assert gpu["strategy"]["matrix"]["shard"] == list(range(1, int(flow["env"]["GPU_SHARDS"]) + 1))
    assert "gpu" in gpu["runs-on"] and "--device cuda" in _run_lines(gpu)


def test_each_shard_uploads_uniquely_named_results_and_the_last_job_merges_and_publishes():
    flow = _workflow()
    for name in ("cpu", "gpu"):
        steps = flow["jobs"][name]["steps"]
        uploads = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact")]
        assert len(uploads) == 1 and uploads[0].get("if") == "always()"
        artifact = uploads[0]["with"]["name"]
        assert "matrix.shard" in artifact and artifact.startswith("results-")
    publish = flow["jobs"]["publish"]
    assert set(publish["needs"]) == {"cpu", "gpu"}
    lines = _run_lines(publish)
    for command in ("klconf merge", "klconf site", "klconf diff", "klconf report"):
        assert command in lines
    used = [str(s.get("uses", "")) for s in publish["steps"]]
    assert any(u.startswith("actions/deploy-pages") for u in used)
    assert publish["permissions"]["pages"] == "write"


def test_every_klconf_command_in_the_workflow_exists():
    from conformance.cli import build_parser

    commands = set(build_parser()._subparsers._group_actions[0].choices)
    used = set(re.findall(r"(?m)^\s*klconf (\w+)", "\n".join(_run_lines(j) for j in _workflow()["jobs"].values())))
    assert used and used <= commands, used - commands
