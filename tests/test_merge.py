"""`klconf merge`: shards from a CPU and a GPU machine become one results file; duplicates and
conflicting run information are reported; completeness is measured against the case corpus."""

from __future__ import annotations

import pytest

from conformance import cases, runner
from conformance.cli import main
from conformance.report import model, write_report
from conformance.results import read, run_header
from tests import fakes
from tests.test_report_records import failing, framework_event, record, write_results

CASES = """\
cases:
  - id: small-a
    description: two rows
    p: {probs: [[0.2, 0.3, 0.5], [0.1, 0.4, 0.5]]}
    q: {probs: [[0.1, 0.6, 0.3], [0.25, 0.25, 0.5]]}
  - id: small-b
    description: one row
    p: {probs: [[0.9, 0.05, 0.05]]}
    q: {probs: [[0.3, 0.3, 0.4]]}
"""


def _header(corpus="c0ffee", **extra):
    return {**run_header(argv=["klconf", "run"], corpus_hash=corpus), **extra}


@pytest.fixture
def shards(tmp_path):
    cpu = write_results(
        tmp_path / "cpu.jsonl",
        [record(), record(dtype="float64"), failing(dtype="float16")],
        header=_header(),
        frameworks=[framework_event()],
    )
    gpu_header = _header(
        gpus=[{"index": 0, "name": "NVIDIA H100 80GB HBM3", "driver": "550.54.15", "memory": "81559 MiB"}]
    )
    gpu = write_results(
        tmp_path / "gpu.jsonl",
        [record(device="cuda"), record(device="cuda", dtype="float64")],
        header=gpu_header,
        frameworks=[{**framework_event("torch", "2.13.0+cu126"), "devices": ["cpu", "cuda"]}],
    )
    return cpu, gpu


def test_cpu_and_gpu_shards_become_one_valid_file(shards, tmp_path, capsys):
    cpu, gpu = shards
    out = tmp_path / "merged.jsonl"
    assert main(["merge", str(cpu), str(gpu), "-o", str(out), "--no-completeness"]) == 0
    printed = capsys.readouterr().out
    assert "5 checks (3 from" in printed and f"wrote {out}" in printed
    assert "torch versions differ: torch 2.13.0+cpu in" in printed  # a note, not a conflict
    merged = read(out, validate="all")
    assert merged.problems == [] and merged.end["counts"] == {"pass": 4, "fail": 1} and not merged.end["interrupted"]
    shards_ = merged.header["merged_from"]
    assert [s["source"] for s in shards_] == [str(cpu), str(gpu)]
    assert shards_[1]["header"]["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"
    assert merged.header["corpus_hash"] == "c0ffee"
    run_ids = [s["header"]["run_id"] for s in shards_]
    assert [e["run_id"] for e in merged.framework_events] == run_ids
    assert {r.extra["run_id"] for r in merged.records if r.device == "cuda"} == {run_ids[1]}
    # a report of the merged file shows both machines
    page = write_report([out], tmp_path / "rep").read_text()
    assert "NVIDIA H100 80GB HBM3" in page and "2.13.0+cu126" in page and "Incomplete run" not in page


def test_duplicates_are_reported_and_refused_unless_told_which_to_keep(shards, tmp_path, capsys):
    cpu, _ = shards
    other = write_results(tmp_path / "rerun.jsonl", [failing(), record(case="extra")], header=_header())
    out = tmp_path / "merged.jsonl"
    assert main(["merge", str(cpu), str(other), "-o", str(out), "--no-completeness"]) == 1
    captured = capsys.readouterr()
    duplicate = record().check_id
    assert f"{duplicate}: pass in {cpu}, fail in {other}" in captured.out
    assert "nothing written" in captured.err and not out.exists()
    assert main(["merge", str(cpu), str(other), "-o", str(out), "--no-completeness", "--keep", "last"]) == 0
    kept = {r.check_id: r.verdict for r in read(out).records}
    assert kept[duplicate] == "fail" and len(kept) == 4
    assert main(["merge", str(cpu), str(other), "-o", str(out), "--no-completeness", "--keep", "first"]) == 0
    assert {r.check_id: r.verdict for r in read(out).records}[duplicate] == "pass"


def test_conflicting_corpus_is_refused_unless_forced(shards, tmp_path, capsys):
    cpu, _ = shards
    other = write_results(tmp_path / "other.jsonl", [record(case="elsewhere")], header=_header(corpus="beef"))
    out = tmp_path / "merged.jsonl"
    assert main(["merge", str(cpu), str(other), "-o", str(out), "--no-completeness"]) == 1
    assert "conflict: case corpus hash differs: c0ffee in" in capsys.readouterr().out and not out.exists()
    assert main(["merge", str(cpu), str(other), "-o", str(out), "--no-completeness", "--force"]) == 0
    assert read(out).header["corpus_hash"] == ""


def test_the_same_file_twice_is_a_conflict(shards, tmp_path, capsys):
    cpu, _ = shards
    assert main(["merge", str(cpu), str(cpu), "-o", str(tmp_path / "m.jsonl"), "--no-completeness"]) == 1
    assert "is given more than once" in capsys.readouterr().out


def test_an_incomplete_shard_marks_the_merged_file(shards, tmp_path):
    cpu, _ = shards
    cut = write_results(
        tmp_path / "cut.jsonl", [record(case="late"), record(case="later")], header=_header(), torn=True
    )
    out = tmp_path / "merged.jsonl"
    assert main(["merge", str(cpu), str(cut), "-o", str(out), "--no-completeness"]) == 1  # written, and said so
    assert read(out).end["interrupted"]
    assert main(["merge", str(cpu), str(cut), "-o", str(out), "--no-completeness", "--allow-incomplete"]) == 0
    merged = read(out, validate="all")
    assert merged.problems == [] and merged.end["interrupted"]
    assert merged.end["incomplete_shards"][0].startswith(f"{cut}: no end event")
    assert not model.load([out]).complete
    assert "merged from an incomplete shard" in write_report([out], tmp_path / "rep").read_text()


def test_merging_a_merged_file_keeps_every_machine(shards, tmp_path):
    cpu, gpu = shards
    first = tmp_path / "first.jsonl"
    assert main(["merge", str(cpu), "-o", str(first), "--no-completeness"]) == 0
    both = tmp_path / "both.jsonl"
    assert main(["merge", str(first), str(gpu), "-o", str(both), "--no-completeness"]) == 0
    merged = read(both, validate="all")
    assert [s["source"] for s in merged.header["merged_from"]] == [str(cpu), str(gpu)]
    assert len(merged.records) == 5


def test_completeness_lists_exactly_the_planned_checks_no_shard_ran(tmp_path, capsys):
    (tmp_path / "cases.yaml").write_text(CASES)
    corpus = cases.load_cases(tmp_path / "cases.yaml")
    planned = runner.plan(corpus, [fakes.EXACT])
    ran = [c for c in planned if c.dtype in ("float32", "float64")]
    dropped = [c for c in ran if c.case.id == "small-b" and c.api.option_label(c.options) == "reduction=mean"]
    shard_records = [
        record(c.case.id, c.api.name, "numpy", c.device, c.dtype, c.options) for c in ran if c not in dropped
    ]
    header = _header(corpus=cases.corpus_hash(corpus))
    half = len(shard_records) // 2
    a = write_results(tmp_path / "a.jsonl", shard_records[:half], header=header)
    b = write_results(tmp_path / "b.jsonl", shard_records[half:], header=_header(corpus=header["corpus_hash"]))
    argv = [
        "merge",
        str(a),
        str(b),
        "-o",
        str(tmp_path / "m.jsonl"),
        "--cases",
        str(tmp_path / "cases.yaml"),
        "--api",
        "tests.fakes:plugin_apis",
    ]
    assert main(argv) == 1  # incomplete: written, reported, and a failure unless allowed
    out = capsys.readouterr().out
    missing = sorted(line.split("missing: ", 1)[1] for line in out.splitlines() if line.strip().startswith("missing: "))
    assert (
        missing == sorted(c.id for c in dropped) and len(dropped) == 2
    )  # float32 and float64 only: the shards' dtypes
    assert f"{len(ran) - 2} of {len(ran)} planned checks ran, 2 missing" in out
    assert "missing per API: fake.exact 2" in out and "missing checks may be expected" not in out
    assert main(argv + ["--allow-incomplete"]) == 0
    capsys.readouterr()
    assert main(argv[:-2]) == 0  # without --api, the plug-in's checks cannot be planned: said so
    assert "API fake.exact: not a built-in API" in capsys.readouterr().out


@pytest.mark.parametrize(
    "where, reason", [("full disk", "No space left on device"), ("folder under a file", "File exists")]
)
def test_a_merged_file_that_cannot_be_written_is_one_line_not_a_traceback(shards, tmp_path, capsys, where, reason):
    cpu, gpu = shards
    if where == "full disk":
        out = tmp_path / "merged.jsonl"
        out.symlink_to("/dev/full")  # a full disk answers every write so
    else:
        (tmp_path / "a-file").write_text("")
        out = tmp_path / "a-file" / "merged.jsonl"
    assert main(["merge", str(cpu), str(gpu), "-o", str(out), "--no-completeness"]) == 3
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == f"klconf: cannot write {out}: {reason}"
