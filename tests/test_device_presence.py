"""Devices no framework can see, and frameworks not installed, are decided before planning: their checks become
one entry per framework and device."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conformance import cli, device_presence, results
from conformance.report import write_report
from tests import fakes

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="device nodes are read on Linux")

GPU_API = fakes._custom("fake.gpu_capable", fakes._terms)
GPU_API = type(GPU_API)(**{**GPU_API.__dict__, "devices": ("cpu", "cuda")})
REASON = "no GPU here <script>alert(1)</script>"


def gpu_apis():
    """What `--api tests.test_device_presence:gpu_apis` loads: an API that declares a cuda device."""
    return [GPU_API]


@pytest.mark.parametrize("node", ["nvidiactl", "nvidia0", "kfd", "dxg"])
def test_any_gpu_device_node_means_the_gpu_may_be_present(tmp_path, node):
    (tmp_path / "dev").mkdir()
    assert set(device_presence.absent_devices(str(tmp_path))) == {"cuda"}  # no node yet: absent
    (tmp_path / "dev" / node).touch()
    assert device_presence.absent_devices(str(tmp_path)) == {}


def test_without_a_dev_directory_nothing_is_decided(tmp_path):
    assert device_presence.absent_devices(str(tmp_path)) == {}


def _run(tmp_path: Path, *extra: str) -> tuple[list[dict], dict]:
    out = tmp_path / "out"
    code = cli.main(
        [
            "run",
            "--api",
            "tests.test_device_presence:gpu_apis",
            "--only-api",
            "--check",
            "value",
            "-k",
            "forum",
            "-n",
            "0",
            "--no-report",
            "--no-progress",
            "--expectations",
            "none",
            "--out",
            str(out),
            *extra,
        ]
    )
    assert code in (0, 1)
    events = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert not results.read(out / "results.jsonl", validate="all").problems
    return [e for e in events if e["type"] == "check"], events[-1]


def test_an_absent_gpu_is_one_entry_standing_for_its_checks(tmp_path, monkeypatch):
    monkeypatch.setattr(device_presence, "absent_devices", lambda root="": {})
    checks_before, end_before = _run(tmp_path / "a")
    on_gpu = [c for c in checks_before if c["device"] == "cuda"]
    assert on_gpu and all(c["verdict"] in ("skip", "unsupported") for c in on_gpu)  # numpy: no cuda
    assert end_before["device_skips"] == []

    monkeypatch.setattr(device_presence, "absent_devices", lambda root="": {"cuda": REASON})
    checks, end = _run(tmp_path / "b")
    assert [c for c in checks if c["device"] == "cuda"] == []
    assert sorted(c["check_id"] for c in checks) == sorted(c["check_id"] for c in checks_before if c["device"] == "cpu")
    assert end["device_skips"] == [{"framework": "numpy", "device": "cuda", "checks": len(on_gpu), "reason": REASON}]
    assert end["planned"] == len(checks) and end["complete"]

    page = write_report([tmp_path / "b" / "out" / "results.jsonl"], tmp_path / "report").read_text()
    assert f"{len(on_gpu)} numpy checks on cuda not planned" in page
    assert "no GPU here &lt;script&gt;" in page and REASON not in page


def test_the_count_follows_the_selection(tmp_path, monkeypatch):
    monkeypatch.setattr(device_presence, "absent_devices", lambda root="": {"cuda": REASON})
    _, end = _run(tmp_path / "a", "-m", "float64")
    _, end_all = _run(tmp_path / "b")
    assert 0 < end["device_skips"][0]["checks"] < end_all["device_skips"][0]["checks"]


def test_asking_only_for_an_absent_device_still_records_each_check(tmp_path, monkeypatch):
    monkeypatch.setattr(device_presence, "absent_devices", lambda root="": {"cuda": REASON})
    checks, end = _run(tmp_path, "--device", "cuda")
    assert checks and all(c["device"] == "cuda" and c["verdict"] in ("skip", "unsupported") for c in checks)
    assert end["device_skips"] == []


class _Config:
    """What device_skips reads of pytest's config: -k, -m and a place for its counts."""

    def getoption(self, name, default=None):
        return ""


def _missing(monkeypatch, name: str) -> str:
    from conformance import frameworks

    reason = f"{name} is not installed <b>here</b>"
    monkeypatch.setattr(frameworks.binding(name), "available", lambda: reason)
    return reason


def test_a_framework_that_is_not_installed_is_one_entry_standing_for_its_checks(monkeypatch):
    from conformance import device_skips, frameworks, kinds, runner
    from conformance.cases import load_cases
    from conformance.porting.records import plan as plan_ports
    from conformance.selection import node_id

    monkeypatch.setattr(device_presence, "absent_devices", lambda root="": {})
    reason = _missing(monkeypatch, "mlx")
    cases = [c for c in load_cases() if c.id in ("forum-example", "canonical-2x3")]
    apis = frameworks.builtin_apis(["scipy", "mlx"])
    value = kinds.by_name("value")
    planned = runner.plan(cases, apis, devices=["cpu"], dtypes=["float32", "float64"])
    on_mlx = [c for c in planned if c.api.framework == "mlx"]
    assert on_mlx and len(on_mlx) < len(planned)

    config = _Config()
    kept = device_skips.without_absent(config, value, planned, ["cpu"], node_id, ["scipy", "mlx"])
    assert kept == [c for c in planned if c.api.framework != "mlx"]
    ports = plan_ports(apis, ["scipy", "mlx"], cases)
    to_mlx = [p for p in ports if "mlx" in kinds.frameworks_needed(p)]
    assert any(p.api.framework == "scipy" for p in to_mlx)  # scipy's calls ported to mlx need mlx too
    porting = kinds.by_name("porting")
    kept_ports = device_skips.without_absent(config, porting, ports, ["cpu"], node_id, ["scipy", "mlx"])
    assert kept_ports == [p for p in ports if p not in to_mlx]
    assert device_skips.summary(config) == [
        {"framework": "mlx", "device": "cpu", "checks": len(on_mlx) + len(to_mlx), "reason": reason}
    ]

    alone = _Config()  # asked only for the missing framework: every check planned, each to be a skip
    only = [c for c in planned if c.api.framework == "mlx"]
    assert device_skips.without_absent(alone, value, only, ["cpu"], node_id, ["mlx"]) == only
    assert device_skips.summary(alone) == []


def test_a_run_without_a_framework_says_so_once_and_plans_the_rest(tmp_path, monkeypatch):
    monkeypatch.setattr(device_presence, "absent_devices", lambda root="": {})
    reason = _missing(monkeypatch, "mlx")
    out = tmp_path / "out"
    argv = ["run", "--framework", "scipy", "--framework", "mlx", "--check", "value", "-k", "forum-example"]
    argv += ["--dtype", "float64", "-n", "0", "--no-progress", "--expectations", "none", "--out", str(out)]
    assert cli.main(argv) in (0, 1)
    events = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    checks, end = [e for e in events if e["type"] == "check"], events[-1]
    assert checks and {c["framework"] for c in checks} == {"scipy"}
    skips = {s["device"]: s for s in end["device_skips"]}  # one entry per device mlx declares (cpu, cuda)
    assert {(s["framework"], s["reason"]) for s in skips.values()} == {("mlx", reason)} and "cpu" in skips
    assert skips["cpu"]["checks"] > 0 and end["planned"] == len(checks) and end["complete"]
    page = (out / "index.html").read_text()
    assert f"{skips['cpu']['checks']} mlx checks on cpu not planned" in page
    assert "mlx is not installed &lt;b&gt;here&lt;/b&gt;" in page and reason not in page
