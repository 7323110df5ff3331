"""Strict merging: every problem a set of shards can have is reported precisely, for every kind of check,
and makes `klconf merge` fail unless told otherwise."""

from __future__ import annotations

import pytest

from conformance import sharding
from conformance.cli import main
from conformance.results import Writer, read, run_header, schema_errors
from conformance.sharding import PlannedCheck
from tests.test_report_records import framework_event, record, write_results

KINDS = ("value", "gradient", "property", "distribution", "convention", "porting")


def _records(kinds=KINDS, per_kind: int = 3, device: str = "cpu") -> list:
    return [record(case=f"{kind}-case-{i}", check=kind, device=device) for kind in kinds for i in range(per_kind)]


def _plan(records, shards: int) -> sharding.Plan:
    checks = [
        PlannedCheck(r.check_id, r.check_id, r.check, r.framework, r.device, r.dtype, 1.0 + i % 3, False)
        for i, r in enumerate(records)
    ]
    return sharding.split(checks, shards)


def _shard(path, plan: sharding.Plan, records, shard: int, ran=None, header=None, frameworks=None):
    """The results file of one shard: its records (or `ran`), and the plan in its footer."""
    shard_of = {c.check_id: c.shard for c in plan.checks}
    mine = ran if ran is not None else [r for r in records if shard_of[r.check_id] == shard]
    write_results(
        path,
        mine,
        header=header
        or run_header(argv=["klconf", "run"], corpus_hash="c0ffee", shard={"index": shard, "count": plan.count}),
        frameworks=frameworks if frameworks is not None else [framework_event()],
        end=False,
    )
    with Writer(path, mode="a") as writer:
        writer.write(
            {
                "type": "end",
                "counts": {"pass": len(mine)},
                "exitstatus": 0,
                "interrupted": False,
                "plan": plan.record_form(shard),
            }
        )
    return path


@pytest.fixture
def planned(tmp_path):
    records = _records()
    plan = _plan(records, 3)
    paths = [_shard(tmp_path / f"shard{k}.jsonl", plan, records, k) for k in (1, 2, 3)]
    return records, plan, paths


def _merge(capsys, *argv) -> tuple[int, str]:
    code = main(["merge", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_every_shard_of_a_plan_merges_complete_and_the_merged_file_merges_again(planned, tmp_path, capsys):
    records, plan, paths = planned
    out = tmp_path / "merged.jsonl"
    code, text = _merge(capsys, *paths, "-o", out)
    assert code == 0, text
    assert f"{len(records)} of {len(records)} planned checks ran, 0 missing" in text
    merged = read(out, validate="none")  # (the synthetic convention and porting records lack their extras)
    assert schema_errors(merged.end) == [] and schema_errors(merged.header) == []
    assert merged.problems == [] and len(merged.records) == len(records)
    assert [(p["plan_hash"], p["ran_shards"]) for p in merged.end["plans"]] == [(plan.hash, [1, 2, 3])]
    again = tmp_path / "again.jsonl"
    assert _merge(capsys, out, "-o", again)[0] == 0


def test_a_missing_shard_is_named_with_each_of_its_checks(planned, tmp_path, capsys):
    records, plan, paths = planned
    out = tmp_path / "merged.jsonl"
    code, text = _merge(capsys, paths[0], paths[2], "-o", out)
    held = [c for c in plan.checks if c.shard == 2]
    assert code == 1 and out.exists()  # written, so the report shows what there is, and a failure
    assert f"missing shard: shard 2/3 of plan {plan.hash} ({len(held)} checks): no complete input ran it" in text
    for check in held:
        assert f"missing: {check.check_id} ({check.kind})" in text
    assert "--allow-incomplete" in text
    assert _merge(capsys, paths[0], paths[2], "-o", out, "--allow-incomplete")[0] == 0


def test_a_planned_check_no_shard_ran_is_named_for_every_kind_of_check(planned, tmp_path, capsys):
    records, plan, _ = planned
    dropped = {kind: next(r for r in records if r.check == kind).check_id for kind in KINDS}
    shard_of = {c.check_id: c.shard for c in plan.checks}
    paths = [
        _shard(
            tmp_path / f"s{k}.jsonl",
            plan,
            records,
            k,
            ran=[r for r in records if shard_of[r.check_id] == k and r.check_id not in dropped.values()],
        )
        for k in (1, 2, 3)
    ]
    code, text = _merge(capsys, *paths, "-o", tmp_path / "m.jsonl")
    assert code == 1
    assert f"{len(records) - 6} of {len(records)} planned checks ran, 6 missing" in text
    for kind, check_id in dropped.items():
        assert f"missing: {check_id} ({kind})" in text
    assert "missing per kind of check: " in text and "missing shard" not in text


def test_a_check_in_two_shards_is_refused_as_a_duplicate(planned, tmp_path, capsys):
    records, plan, paths = planned
    stray = next(r for r in records if next(c.shard for c in plan.checks if c.check_id == r.check_id) == 1)
    shard_of = {c.check_id: c.shard for c in plan.checks}
    second = _shard(
        tmp_path / "s2dup.jsonl", plan, records, 2, ran=[r for r in records if shard_of[r.check_id] == 2] + [stray]
    )
    out = tmp_path / "m.jsonl"
    code, text = _merge(capsys, paths[0], second, paths[2], "-o", out)
    assert code == 1 and not out.exists()
    assert f"{stray.check_id}: pass in {paths[0]}, pass in {second}" in text and "nothing written" in text


def test_the_same_shard_given_twice_is_a_conflict(planned, tmp_path, capsys):
    records, plan, paths = planned
    rerun = _shard(tmp_path / "rerun1.jsonl", plan, records, 1)
    code, text = _merge(capsys, *paths, rerun, "-o", tmp_path / "m.jsonl", "--keep", "last")
    assert code == 1
    assert f"conflict: shard 1/3 of plan {plan.hash} is given more than once: {paths[0]}, {rerun}" in text


def test_a_plan_split_two_ways_is_a_conflict(planned, tmp_path, capsys):
    records, plan, paths = planned
    other = _plan(records, 2)
    assert other.hash == plan.hash and other.split_hash != plan.split_hash
    odd = _shard(tmp_path / "two-way.jsonl", other, records, 2)
    code, text = _merge(capsys, paths[0], odd, "-o", tmp_path / "m.jsonl", "--keep", "first")
    assert code == 1 and f"conflict: plan {plan.hash} is split differently: 3 shard(s)" in text
    assert f"2 (split {other.split_hash}) in {odd}" in text


def test_two_plans_holding_one_check_are_a_conflict(tmp_path, capsys):
    records = _records()
    first, second = _plan(records[:10], 1), _plan(records[5:], 1)
    a = _shard(tmp_path / "a.jsonl", first, records[:10], 1)
    b = _shard(tmp_path / "b.jsonl", second, records[5:], 1)
    code, text = _merge(capsys, a, b, "-o", tmp_path / "m.jsonl", "--keep", "first")
    assert code == 1
    assert f"conflict: plan hash differs: plans {first.hash} ({a}) and {second.hash} ({b}) both hold 5 check(s)" in text


def test_plans_that_share_no_check_merge_freely(tmp_path, capsys):
    cpu, gpu = _records(), _records(device="cuda")
    a = _shard(tmp_path / "cpu.jsonl", _plan(cpu, 1), cpu, 1)
    b = _shard(
        tmp_path / "gpu.jsonl",
        _plan(gpu, 1),
        gpu,
        1,
        frameworks=[{**framework_event("torch", "2.13.0+cu126"), "devices": ["cpu", "cuda"]}],
    )
    code, text = _merge(capsys, a, b, "-o", tmp_path / "m.jsonl")
    assert code == 0, text
    assert "note: torch versions differ" in text  # one release, a CPU and a CUDA build: a note, not a conflict


def test_a_record_outside_every_plan_is_reported(planned, tmp_path, capsys):
    records, plan, paths = planned
    shard_of = {c.check_id: c.shard for c in plan.checks}
    extra = record(case="not-planned")
    ran = [r for r in records if shard_of[r.check_id] == 1] + [extra]
    first = _shard(tmp_path / "s1.jsonl", plan, records, 1, ran=ran)
    code, text = _merge(capsys, first, paths[1], paths[2], "-o", tmp_path / "m.jsonl")
    assert code == 1 and f"unplanned: 1 record(s) in no input's plan, e.g. {extra.check_id}" in text


@pytest.mark.parametrize(
    "field, first, second, message",
    [
        ("klconf", "0.1.0", "0.2.0", "conflict: klconf version differs: 0.1.0 in"),
        ("corpus_hash", "c0ffee", "beef", "conflict: case corpus hash differs: c0ffee in"),
    ],
)
def test_conflicting_run_information_is_refused(planned, tmp_path, capsys, field, first, second, message):
    records, plan, _ = planned
    headers = [{**run_header(argv=["klconf"], corpus_hash="c0ffee"), field: value} for value in (first, second)]
    a = _shard(tmp_path / "a.jsonl", plan, records, 1, header=headers[0])
    b = _shard(tmp_path / "b.jsonl", plan, records, 2, header=headers[1])
    code, text = _merge(capsys, a, b, "-o", tmp_path / "m.jsonl", "--allow-incomplete")
    assert code == 1 and message in text and "nothing written" in text
    assert _merge(capsys, a, b, "-o", tmp_path / "m.jsonl", "--allow-incomplete", "--force")[0] == 0


def test_different_releases_of_one_framework_are_a_conflict(planned, tmp_path, capsys):
    records, plan, paths = planned
    newer = _shard(tmp_path / "newer.jsonl", plan, records, 2, frameworks=[framework_event("torch", "2.14.1+cpu")])
    code, text = _merge(capsys, paths[0], newer, paths[2], "-o", tmp_path / "m.jsonl")
    assert code == 1 and "conflict: torch versions differ: torch 2.13.0+cpu in" in text and "2.14.1+cpu" in text


def test_no_completeness_judges_nothing_but_still_refuses_conflicts(planned, tmp_path, capsys):
    records, plan, paths = planned
    code, text = _merge(capsys, paths[0], "-o", tmp_path / "m.jsonl", "--no-completeness")
    assert code == 0 and "missing" not in text
    rerun = _shard(tmp_path / "rerun1.jsonl", plan, records, 1)
    code, text = _merge(capsys, paths[0], rerun, "-o", tmp_path / "m.jsonl", "--no-completeness", "--keep", "last")
    assert code == 1 and "is given more than once" in text


def test_without_recorded_plans_the_corpus_plans_convention_and_porting_checks_too(tmp_path, capsys):
    from conformance.inference import structural_dtype
    from conformance.inference.records import CASE_ID
    from conformance.porting.records import DTYPE_LABEL, case_id
    from tests import fakes

    api = fakes.EXACT
    conventions = [
        record(
            case=CASE_ID, api=api.name, framework="numpy", dtype=structural_dtype(api), options=o, check="convention"
        )
        for o in api.options
    ]
    ports = [
        record(
            case=case_id("torch"),
            api=api.name,
            framework="numpy",
            dtype=DTYPE_LABEL,
            options=o,
            check="porting",
            extra={"target_framework": "torch"},
        )
        for o in api.options
    ]
    path = write_results(tmp_path / "old.jsonl", conventions[1:] + ports[:-1])  # no plan in its footer
    code, text = _merge(capsys, path, "-o", tmp_path / "m.jsonl", "--api", "tests.fakes:plugin_apis")
    assert code == 1 and "completeness (from the case corpus)" in text
    assert f"missing: {conventions[0].check_id}\n" in text and f"missing: {ports[-1].check_id}\n" in text
    assert f"{len(api.options) * 2 - 2} of {len(api.options) * 2} planned checks ran" in text


@pytest.mark.parametrize(
    "broken",
    [
        {"plan_hash": "h", "shards": 2, "ran_shards": [1], "checks": [["only-an-id"]]},
        {"plan_hash": "h", "shards": "2", "ran_shards": [1], "checks": []},
        {"plan_hash": "h", "shards": 2, "ran_shards": [3], "checks": []},
        {"plan_hash": "", "shards": 1, "ran_shards": [1], "checks": []},
        ["not", "a", "plan"],
    ],
)
def test_a_malformed_plan_is_left_out_not_half_read(tmp_path, capsys, broken):
    path = write_results(tmp_path / "r.jsonl", [record()], end=False)
    with Writer(path, mode="a") as writer:
        writer.write({"type": "end", "counts": {"pass": 1}, "plan": broken})
    code, text = _merge(capsys, path, "-o", tmp_path / "m.jsonl", "--allow-incomplete")
    assert code == 0 and "Traceback" not in text and "completeness (from the case corpus)" in text
