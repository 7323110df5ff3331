"""Splitting a run into shards, at the level of pytest items, so every kind of check splits alike.

`klconf run --shard K/N` runs the K-th of N disjoint parts of the plan; the N parts together are
the whole plan. The plan is what pytest collected after its own selection (-k, -m and the klconf
options), so every machine that is given the same options computes the same plan and the same
split without talking to the others. Shards are balanced by cost, not by count, with the greedy
longest-processing-time rule: the costliest group of checks goes to the shard with the least load
so far. A group is the checks that share work, as their kind declares it (`Kind.shared_work`: the
checks of one case, dtype and kind share the oracle's values; a convention check and the ports of
the same call share its inference and its calls on the corpus), and so are cheaper together; every
other check is a group of its own. A check's cost is its `duration_s` in
an earlier run's results (`--durations`), or else an estimate from its kind, the number of elements
of its case and its dtype, scaled so that estimates and measured durations share one unit.

The plan travels in the results file's end event (`plan`: its hash, the shard count, this
shard's number and every planned check with the shard it falls in), so `klconf merge` can tell
which planned checks no shard ran, which shard is missing, and whether two inputs split the same
plan differently, for every kind of check, without the case corpus or any framework. Under
pytest-xdist the plan is made in the workers (where collection happens) and reaches the writing
process as worker output.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from . import kinds

PLAN_KEY = "klconf_plan"  # in xdist workeroutput, and as the config attribute holding the plan
# Seconds per check before the elements of its case are counted, and seconds per element, by kind
# of check, from a full run on two cores with a cold oracle cache: JAX gradient checks took 0.43 s each
# on small cases, porting 3 s and convention checks 2.5 s whatever the corpus. Checks of one case in one
# dtype share the oracle's high-precision work (its caches live in the process): in a run of a plug-in
# API the first value check of the 524k-element case took 154 s (3e-4 s per element), each later one
# about 2 s (4e-6 s per element). So those checks form one group, kept on one shard, whose cost counts
# the shared work once (ORACLE_SECONDS_PER_ELEMENT) and each check's own work (PER_ELEMENT_SECONDS).
# A kind's base cost is declared with the kind (conformance/kinds.py); "other" is any non-klconf test.
BASE_SECONDS = {**{kind.name: kind.base_seconds for kind in kinds.KINDS}, "other": 0.1}
PER_ELEMENT_SECONDS = {"value": 4e-6, "gradient": 1.2e-5, "property": 2e-5}
ORACLE_SECONDS_PER_ELEMENT = {"value": 3e-4, "gradient": 3e-4}
UNSUPPORTED_SECONDS = 0.005  # a dtype the API does not take: a record and nothing else
DTYPE_WEIGHT = {"float16": 1.2, "bfloat16": 1.2, "float32": 1.0, "float64": 1.0}


@dataclass(frozen=True)
class ShardSpec:
    index: int  # 1-based
    count: int

    @classmethod
    def parse(cls, text: str) -> ShardSpec:
        """'K/N' with 1 <= K <= N."""
        k, sep, n = str(text).partition("/")
        try:
            index, count = int(k), int(n)
        except ValueError:
            index = count = 0
        if not sep or count < 1 or not 1 <= index <= count:
            raise ValueError(f"a shard is K/N with 1 <= K <= N, not {text!r}")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass
class PlannedCheck:
    nodeid: str  # pytest's id of the item
    check_id: str  # the id its record carries
    kind: str
    framework: str
    device: str
    dtype: str
    cost: float  # seconds, measured or estimated: the check's own work
    measured: bool  # cost from an earlier run's duration_s
    group: str = ""  # checks that share work (one case, dtype and kind) and so share a shard; "" for none
    elements: int = 0  # of the case, for the group's shared work
    shard: int = 1

    @property
    def group_key(self) -> str:
        return self.group or self.check_id


@dataclass
class Plan:
    checks: list[PlannedCheck]
    count: int  # shards
    group_costs: dict[str, float]  # seconds per group of checks that share a shard

    @property
    def hash(self) -> str:
        """Identifies what is planned (the check ids), whatever the split."""
        return _digest(sorted(c.check_id for c in self.checks))

    @property
    def split_hash(self) -> str:
        """Identifies the split too: two shards of one run must agree on it."""
        return _digest([self.count] + sorted([c.check_id, c.shard] for c in self.checks))

    def loads(self) -> list[float]:
        totals = [0.0] * self.count
        shard_of = {c.group_key: c.shard for c in self.checks}
        for group, cost in self.group_costs.items():
            totals[shard_of[group] - 1] += cost
        return totals

    def to_json(self) -> dict:
        """The plan for an orchestrator (`klconf plan --json`)."""
        return {
            "plan_hash": self.hash,
            "split_hash": self.split_hash,
            "shards": self.count,
            "loads": [round(x, 3) for x in self.loads()],
            "counts": [sum(c.shard == k for c in self.checks) for k in range(1, self.count + 1)],
            "checks": [{**asdict(c), "cost": round(c.cost, 6)} for c in self.checks],
        }

    def record_form(self, shard: int | None) -> dict:
        """What a results file keeps: enough for merge to judge completeness and the split."""
        return {
            "plan_hash": self.hash,
            "split_hash": self.split_hash,
            "shards": self.count,
            "ran_shards": [shard] if shard else list(range(1, self.count + 1)),
            "checks": [[c.check_id, c.kind, c.shard] for c in self.checks],
        }


def _digest(values: list) -> str:
    return hashlib.sha256(json.dumps(values, separators=(",", ":")).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- what an item is


def describe(item) -> PlannedCheck:
    """The check behind a collected item: its record's id, kind, framework, device, dtype and estimated cost."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    kind = kinds.by_fixture(params)
    if kind is None:  # not a klconf check: planned and split all the same
        return PlannedCheck(item.nodeid, item.nodeid, "other", "", "", "", BASE_SECONDS["other"], False)
    check = params[kind.fixture]
    framework = kinds.framework_of(check)
    if kind.tensor_level:
        if check.dtype not in check.api.dtypes:  # recorded as unsupported at once: no oracle, no call
            return PlannedCheck(
                item.nodeid, check.id, kind.name, framework, check.device, check.dtype, UNSUPPORTED_SECONDS, False
            )
        elements = _elements(check.case)
        planned = _planned(item, check.id, kind.name, framework, check.device, check.dtype, elements)
        planned.group, planned.elements = kind.shared_work(check), elements
        return planned
    planned = _planned(item, check.id, kind.name, framework, check.device, check.dtype, 1)
    planned.group = kind.shared_work(check)
    return planned


def _elements(case) -> int:
    return max(1, math.prod(int(n) for n in case.shape))


def _planned(item, check_id: str, kind: str, framework: str, device: str, dtype: str, elements: int) -> PlannedCheck:
    return PlannedCheck(item.nodeid, check_id, kind, framework, device, dtype, estimate(kind, elements, dtype), False)


def estimate(kind: str, elements: int, dtype: str) -> float:
    """Seconds a check is expected to take: base + per-element cost, by kind, times a dtype weight."""
    per_element = PER_ELEMENT_SECONDS.get(kind, 0.0) * elements
    return (BASE_SECONDS.get(kind, BASE_SECONDS["other"]) + per_element) * DTYPE_WEIGHT.get(dtype, 1.0)


# --------------------------------------------------------------------------- costs and the split


def read_durations(paths: Iterable[str | Path]) -> dict[str, float]:
    """check id -> duration_s from earlier results files (the last one read wins)."""
    from .results import iter_events, number

    durations: dict[str, float] = {}
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no such results file: {path}")
        for _, event, _ in iter_events(path):
            if event is None or event.get("type") != "check" or event.get("duration_s") is None:
                continue
            try:
                seconds = number(event["duration_s"])
            except (TypeError, ValueError):
                continue
            if seconds is not None and math.isfinite(seconds) and seconds >= 0:
                durations[str(event.get("check_id"))] = seconds
    return durations


def shared_estimate(check: PlannedCheck) -> float:
    """Seconds of work a group of checks shares (the oracle's, for one case and dtype), estimated."""
    return ORACLE_SECONDS_PER_ELEMENT.get(check.kind, 0.0) * check.elements


def group_costs(checks: list[PlannedCheck], durations: dict[str, float] | None = None) -> dict[str, float]:
    """Seconds per group. A group with a measured check costs what its measured checks took (the shared work
    included, as it was paid then) plus the estimates of the others; estimates are rescaled by measured over
    estimated seconds across the fully measured groups, so both share one unit."""
    groups: dict[str, list[PlannedCheck]] = {}
    for c in checks:
        groups.setdefault(c.group_key, []).append(c)
    durations = durations or {}
    estimated = {g: sum(c.cost for c in members) + shared_estimate(members[0]) for g, members in groups.items()}
    measured_groups = [g for g, members in groups.items() if all(c.check_id in durations for c in members)]
    spent = sum(durations[c.check_id] for g in measured_groups for c in groups[g])
    guessed = sum(estimated[g] for g in measured_groups)
    scale = spent / guessed if measured_groups and guessed > 0 else 1.0
    costs = {}
    for g, members in groups.items():
        known = [c for c in members if c.check_id in durations]
        for c in members:
            c.cost, c.measured = (durations[c.check_id], True) if c in known else (c.cost * scale, False)
        shared = 0.0 if known else shared_estimate(members[0]) * scale
        costs[g] = sum(c.cost for c in members) + shared
    return costs


def split(checks: list[PlannedCheck], count: int, durations: dict[str, float] | None = None) -> Plan:
    """Greedy longest-processing-time over groups of checks: costliest first (ties by key), each to the least
    loaded shard (ties to the lowest number). Deterministic for a given plan and durations."""
    costs = group_costs(checks, durations)
    loads = [0.0] * count
    shard_of: dict[str, int] = {}
    for group in sorted(costs, key=lambda g: (-costs[g], g)):
        lightest = min(range(count), key=lambda k: (loads[k], k))
        shard_of[group] = lightest + 1
        loads[lightest] += costs[group]
    for c in checks:
        c.shard = shard_of[c.group_key]
    return Plan(checks, count, costs)


def make_plan(items: list, count: int, durations: dict[str, float] | None = None) -> Plan:
    return split([describe(item) for item in items], count, durations)


def costliest_first(items: list, plan: Plan) -> None:
    """Order items by their group's cost, costliest first, a group's checks together and in their order:
    workers that take the expensive work first do not leave one of them busy with it at the end, and a
    group's shared work (its oracle values) is done by the worker that runs the group. Deterministic, so
    every pytest-xdist worker collects the same order."""
    rank = {c.nodeid: (-plan.group_costs[c.group_key], c.group_key) for c in plan.checks}
    items.sort(key=lambda item: rank[item.nodeid])


# --------------------------------------------------------------------------- pytest


def add_options(group) -> None:
    group.addoption(
        "--klconf-shard",
        default=None,
        metavar="K/N",
        help="run only the K-th of N shards of the plan (balanced by cost)",
    )
    group.addoption(
        "--klconf-durations",
        action="append",
        default=[],
        metavar="RESULTS",
        help="balance shards by the duration_s of an earlier run's results; repeatable",
    )
    group.addoption(
        "--klconf-plan-out",
        default=None,
        metavar="PATH",
        help="write the plan (every check, its cost and shard) here as JSON",
    )


def shard_of(config) -> ShardSpec | None:
    text = config.getoption("klconf_shard", None)
    if not text:
        return None
    try:
        return ShardSpec.parse(text)
    except ValueError as exc:
        raise pytest.UsageError(f"--klconf-shard: {exc}") from None


def header_fields(config) -> dict:
    """Run-header fields: the shard this process runs, known before collection."""
    spec = shard_of(config)
    return {"shard": {"index": spec.index, "count": spec.count}} if spec else {}


def end_fields(config) -> dict:
    """End-event fields: the plan as collected (in this process, or reported by an xdist worker)."""
    plan = getattr(config, "_" + PLAN_KEY, None)
    return {"plan": plan} if plan is not None else {}


class Sharding:
    """Registered by the klconf plugin in every process: plans, deselects, and hands the plan on."""

    def __init__(self, config):
        self.config = config
        self.spec = shard_of(config)

    @pytest.hookimpl(trylast=True)  # after -k and -m have deselected what they do
    def pytest_collection_modifyitems(self, session, config, items):
        wanted = self.spec or config.getoption("klconf_plan_out") or config.getoption("klconf_results", None)
        if not wanted:  # a pytest session that is not a klconf run (the plugin loads in every session)
            return
        paths = config.getoption("klconf_durations")
        try:
            durations = read_durations(paths) if paths else None
        except FileNotFoundError as exc:
            raise pytest.UsageError(f"--klconf-durations: {exc}") from None
        plan = make_plan(items, self.spec.count if self.spec else 1, durations)
        out = config.getoption("klconf_plan_out")
        if out:
            Path(out).write_text(json.dumps(plan.to_json(), indent=1) + "\n", encoding="utf-8")
        recorded = json.dumps(plan.record_form(self.spec.index if self.spec else None), separators=(",", ":"))
        setattr(config, "_" + PLAN_KEY, json.loads(recorded))
        if hasattr(config, "workeroutput"):
            config.workeroutput[PLAN_KEY] = recorded
        if self.spec:
            shard_of_node = {c.nodeid: c.shard for c in plan.checks}
            keep = [i for i in items if shard_of_node[i.nodeid] == self.spec.index]
            dropped = [i for i in items if shard_of_node[i.nodeid] != self.spec.index]
            if dropped:
                config.hook.pytest_deselected(items=dropped)
                items[:] = keep
        costliest_first(items, plan)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error):
        """pytest-xdist, in the writing process: a worker's plan (every worker makes the same one)."""
        recorded = getattr(node, "workeroutput", {}).get(PLAN_KEY)
        if recorded and getattr(self.config, "_" + PLAN_KEY, None) is None:
            setattr(self.config, "_" + PLAN_KEY, json.loads(recorded))


def configure(config) -> None:
    config.pluginmanager.register(Sharding(config), "klconf-sharding")
