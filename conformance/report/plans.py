"""Strict merging against the plans the runs recorded (conformance/sharding.py writes them).

Each run's end event holds its plan: a hash of the planned check ids, a hash of the split, the
shard count, the shards that file ran, and every planned check id with its kind and shard. Merging
by plan needs neither the case corpus nor any framework, and covers every kind of check alike:

- a plan's shards must all be present (a shard no input ran is named, with its checks);
- every planned check must have a record in the merged inputs (each missing one is named);
- two inputs that ran one plan must have split it the same way (same shard count and split);
- two different plans must not both hold a check (they were made from different selections,
  corpora or klconf versions, so their records do not belong in one results file);
- the same shard of one plan must not be given twice.

Plans that share no check (a CPU run and a GPU run, or one plan per framework) merge freely.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from .model import Source

SHOWN = 50


@dataclass
class MergedPlan:
    """One plan as seen across the inputs."""

    plan_hash: str
    shards: int
    split_hash: str
    checks: list[list]  # [check_id, kind, shard]
    ran_shards: Counter = field(default_factory=Counter)  # shard -> number of inputs that ran it
    sources: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))  # shard -> input paths

    def to_json(self) -> dict:
        return {
            "plan_hash": self.plan_hash,
            "split_hash": self.split_hash,
            "shards": self.shards,
            "ran_shards": sorted(self.ran_shards),
            "checks": self.checks,
        }


@dataclass
class PlanCheck:
    plans: list[MergedPlan]
    conflicts: list[str]
    without_plan: list[str]  # inputs that carry no plan
    planned: int = 0
    ran: int = 0
    missing: list[tuple[str, str]] = field(default_factory=list)  # (check id, kind)
    missing_shards: list[str] = field(default_factory=list)
    unplanned: list[str] = field(default_factory=list)  # records in no plan, though their input had one


def plans_of(source: Source) -> list[dict]:
    """The well-formed plans a results file carries: a run's own, or the ones a merged file kept. A malformed
    plan is left out whole (the file then counts as one without a plan), never half read."""
    end = source.results.end or {}
    plans: list = end["plans"] if isinstance(end.get("plans"), list) else [end["plan"]] if end.get("plan") else []
    return [p for p in plans if _well_formed(p)]


def _well_formed(plan) -> bool:
    if not isinstance(plan, dict) or not isinstance(plan.get("plan_hash"), str) or not plan["plan_hash"]:
        return False
    shards = plan.get("shards")
    if type(shards) is not int or shards < 1 or not isinstance(plan.get("checks"), list):
        return False
    ran = plan.get("ran_shards")
    if not isinstance(ran, list) or not all(type(k) is int and 1 <= k <= shards for k in ran):
        return False
    return all(
        isinstance(c, list)
        and len(c) == 3
        and isinstance(c[0], str)
        and isinstance(c[1], str)
        and type(c[2]) is int
        and 1 <= c[2] <= shards
        for c in plan["checks"]
    )


def check_plans(sources: list[Source], records: list, origin: list[str]) -> PlanCheck:
    """Conflicts between the inputs' plans, and what their plans hold that no input ran.
    `origin` is the path of the input each record came from."""
    merged: dict[str, MergedPlan] = {}
    conflicts, without, with_plan = [], [], set()
    for source in sources:
        plans = plans_of(source)
        if plans:
            with_plan.add(source.path)
        else:
            without.append(source.path)
        for recorded in plans:
            conflicts += _join(merged, recorded, source.path)
    conflicts += _overlaps(list(merged.values()))
    result = PlanCheck(list(merged.values()), conflicts, without)
    ran = {r.check_id for r in records}
    planned_ids: set[str] = set()
    for plan in merged.values():
        for check_id, kind, _ in plan.checks:
            if check_id in planned_ids:
                continue  # held by an earlier plan too: reported as a conflict, counted once
            planned_ids.add(check_id)
            result.planned += 1
            if check_id in ran:
                result.ran += 1
            else:
                result.missing.append((check_id, kind))
        for shard in range(1, plan.shards + 1):
            if shard not in plan.ran_shards:
                held = sum(1 for c in plan.checks if c[2] == shard)
                result.missing_shards.append(
                    f"shard {shard}/{plan.shards} of plan {plan.plan_hash} ({held:,} checks): no complete input ran it"
                )
    result.unplanned = [
        r.check_id for r, path in zip(records, origin) if path in with_plan and r.check_id not in planned_ids
    ]
    return result


def _join(merged: dict[str, MergedPlan], plan: dict, path: str) -> list[str]:
    conflicts = []
    key, shards, ran = plan["plan_hash"], plan["shards"], plan["ran_shards"]
    mine = merged.get(key)
    if mine is None:
        mine = merged[key] = MergedPlan(key, shards, str(plan.get("split_hash", "")), list(plan["checks"]))
    elif (mine.shards, mine.split_hash) != (shards, str(plan.get("split_hash", ""))):
        first = next(iter(p for ps in mine.sources.values() for p in ps), "?")
        conflicts.append(
            f"plan {key} is split differently: {mine.shards} shard(s) (split {mine.split_hash}) "
            f"in {first}, "
            f"{shards} (split {plan.get('split_hash', '')}) in {path} (different --shard counts "
            "or --durations)"
        )
        return conflicts
    for shard in ran:
        if mine.ran_shards[shard]:
            conflicts.append(
                f"shard {shard}/{shards} of plan {key} is given more than once: "
                f"{', '.join(mine.sources[shard] + [path])}"
            )
        mine.ran_shards[shard] += 1
        mine.sources[shard].append(path)
    return conflicts


def _overlaps(plans: list[MergedPlan]) -> list[str]:
    """Two different plans holding one check: their runs were planned from different selections or corpora."""
    conflicts = []
    seen: dict[str, str] = {}
    shared: dict[tuple[str, str], list[str]] = defaultdict(list)
    for plan in plans:
        for check_id, _, _ in plan.checks:
            other = seen.setdefault(check_id, plan.plan_hash)
            if other != plan.plan_hash:
                shared[(other, plan.plan_hash)].append(check_id)

    def where(plan_hash: str) -> str:
        paths = {p for m in plans if m.plan_hash == plan_hash for ps in m.sources.values() for p in ps}
        return ", ".join(sorted(paths))

    for (a, b), ids in shared.items():
        conflicts.append(
            f"plan hash differs: plans {a} ({where(a)}) and {b} ({where(b)}) both hold {len(ids):,} "
            f"check(s), e.g. {ids[0]} (made from different selections, corpora or klconf versions)"
        )
    return conflicts


def summary_lines(check: PlanCheck) -> list[str]:
    lines = [
        f"completeness (from the recorded plans): {check.ran:,} of {check.planned:,} planned checks ran, "
        f"{len(check.missing):,} missing"
    ]
    lines += [f"  missing shard: {m}" for m in check.missing_shards]
    if check.missing:
        kinds = Counter(kind for _, kind in check.missing)
        lines.append("  missing per kind of check: " + ", ".join(f"{k} {n:,}" for k, n in kinds.most_common()))
        lines += [f"  missing: {i} ({kind})" for i, kind in check.missing[:SHOWN]]
        if len(check.missing) > SHOWN:
            lines.append(f"  ... and {len(check.missing) - SHOWN:,} more")
    if check.unplanned:
        lines.append(f"  unplanned: {len(check.unplanned):,} record(s) in no input's plan, e.g. {check.unplanned[0]}")
    lines += [
        f"  no plan recorded in {p} (an interrupted run, or one from an older klconf)" for p in check.without_plan
    ]
    return lines
