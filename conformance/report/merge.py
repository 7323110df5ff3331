"""Merging results from several machines or runs into one file, and judging completeness, strictly.

A merged file is an ordinary results file: its header lists each shard's own header in
`merged_from`, each framework event and check record names the shard it came from
(`run_id`), and its footer says whether any shard was incomplete and keeps the inputs' plans.
Problems are reported precisely and make `klconf merge` fail unless told otherwise:
- a check id present in two inputs (a duplicate);
- run information that makes inputs incomparable: case corpus, results schema, klconf version,
  a framework's release (its public version: a CPU and a CUDA build of one release agree), a plan
  split two ways, two plans holding one check, one shard given twice (`plans.py`);
- planned checks that no input ran, and shards that no input ran, for every kind of check.
Completeness is judged from the plans the runs recorded when they did (exact, needing nothing
else); for inputs without one, against the case corpus: every check the planners would make for
the frameworks, devices and dtypes the inputs cover, less those some input ran.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..results import SCHEMA_VERSION, Record, Writer, jsonable
from . import plans as plans_mod
from .model import Duplicate, RunSet, Source

MISSING_SHOWN = 50


@dataclass
class Completeness:
    planned: int = 0
    ran: int = 0
    missing: list[str] = field(default_factory=list)
    covered: list[tuple[str, str, str]] = field(default_factory=list)  # (framework, device, dtype)
    not_assessed: list[str] = field(default_factory=list)
    corpus_note: str = ""
    corpus_hash: str = ""  # of the corpus loaded here, to compare with the shards'


@dataclass
class Merge:
    runset: RunSet
    records: list[Record]
    origin: list[Source]
    duplicates: list[Duplicate]
    conflicts: list[str]
    notes: list[str]
    completeness: Completeness | None = None
    plans: plans_mod.PlanCheck | None = None
    judge_plans: bool = True  # False: completeness is not judged at all (`--no-completeness`)

    @property
    def incomplete(self) -> list[str]:
        """Why the merged file does not hold the whole of what was planned; empty when it does."""
        out = [
            f"incomplete input {s.path}: {'; '.join(s.incomplete_reasons)}"
            for s in self.runset.sources
            if s.incomplete_reasons
        ]
        if self.judge_plans and self.plans is not None and self.plans.plans:
            out += [f"missing shard: {m}" for m in self.plans.missing_shards]
            out += [f"{len(self.plans.missing):,} planned check(s) ran in no input"] if self.plans.missing else []
            out += [f"{len(self.plans.unplanned):,} record(s) in no plan"] if self.plans.unplanned else []
        if self.completeness is not None and self.completeness.missing:
            out.append(f"{len(self.completeness.missing):,} check(s) the corpus plans ran in no input")
        return out


def merge(runset: RunSet, keep: str = "first") -> Merge:
    """Combine the sources' records: for a duplicated check id keep the first or the last occurrence."""
    if keep not in ("first", "last"):
        raise ValueError("keep must be 'first' or 'last'")
    chosen: dict[str, tuple[Record, Source]] = {}
    order: list[str] = []
    duplicates = []
    for source in runset.sources:
        for record in source.results.records:
            if record.check_id in chosen:
                first_record, first_source = chosen[record.check_id]
                duplicates.append(
                    Duplicate(record.check_id, first_source.path, source.path, first_record.verdict, record.verdict)
                )
                if keep == "last":
                    chosen[record.check_id] = (record, source)
                continue
            chosen[record.check_id] = (record, source)
            order.append(record.check_id)
    records = [chosen[i][0] for i in order]
    origin = [chosen[i][1] for i in order]
    conflicts, notes = run_information_differences(runset.sources)
    plan_check = plans_mod.check_plans(runset.sources, records, [s.path for s in origin])
    return Merge(runset, records, origin, duplicates, conflicts + plan_check.conflicts, notes, plans=plan_check)


def run_information_differences(sources: list[Source]) -> tuple[list[str], list[str]]:
    """(conflicts, notes): what makes shards incomparable, and what differs but may be intended."""
    conflicts: list[str] = []
    notes: list[str] = []
    headers = [(s.path, h) for s in sources for h in s.shard_headers]
    run_ids = defaultdict(list)
    for s in sources:
        run_ids[s.run_id].append(s.path)
    for run_id, paths in run_ids.items():
        if len(paths) > 1:
            conflicts.append(f"the same run ({run_id}) is given more than once: {', '.join(paths)}")
    for key, label, bucket in (
        ("corpus_hash", "case corpus hash", conflicts),
        ("schema", "results schema version", conflicts),
        ("klconf", "klconf version", conflicts),
        ("python", "Python version", notes),
    ):
        values = defaultdict(list)
        for path, h in headers:
            if h.get(key) not in (None, ""):
                values[str(h[key])].append(path)
        if len(values) > 1:
            bucket.append(
                f"{label} differs: " + "; ".join(f"{v} in {', '.join(sorted(set(p)))}" for v, p in values.items())
            )
    by_framework: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    settings: dict[str, dict[str, dict[str, list[str]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for s in sources:
        for ev in s.results.framework_events:
            name = ev.get("name", "?")
            by_framework[name][_text(ev.get("versions"))].append(s.path)
            for key, value in (ev.get("settings") or {}).items():
                settings[name][key][_text(value)].append(s.path)
    for name, versions in sorted(by_framework.items()):
        if len(versions) > 1:
            releases = {_release(v) for v in versions}
            bucket = conflicts if len(releases) > 1 else notes  # one release's CPU and CUDA builds may merge
            bucket.append(
                f"{name} versions differ: "
                + "; ".join(f"{v} in {', '.join(sorted(set(p)))}" for v, p in versions.items())
            )
    for name, keys in sorted(settings.items()):
        for key, seen in sorted(keys.items()):
            if len(seen) > 1:
                notes.append(
                    f"{name} setting {key} differs: "
                    + "; ".join(f"{v} in {', '.join(sorted(set(p)))}" for v, p in seen.items())
                )
    return conflicts, notes


def _release(versions_text: str) -> str:
    """The public release of each package in a versions text: '2.13.0+cu126' -> '2.13.0' (PEP 440 local part)."""
    return ", ".join(part.split("+", 1)[0] for part in versions_text.split(", "))


def _text(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in sorted(value.items()))
    return str(value)


def completeness(records: list[Record], cases_root: str | None = None, extra_apis: tuple = ()) -> Completeness:
    """For inputs without a recorded plan: which checks the planners would make from the case corpus, within
    the frameworks, devices and dtypes (and porting targets) the records cover, ran in no input."""
    from ..cases import corpus_hash, load_corpus
    from ..dtypes import DTYPES
    from ..frameworks import DEVICES, FRAMEWORKS, builtin_apis
    from ..kinds import Scope, by_name, framework_of

    result = Completeness()
    covered = {(r.framework, r.device, r.dtype) for r in records}
    result.covered = sorted(covered)
    cases, problems = load_corpus(cases_root)
    if problems:
        result.corpus_note = (
            f"{len(problems)} problem(s) loading the case corpus; completeness uses the {len(cases)} cases that loaded"
        )
    frameworks = sorted({fw for fw, _, _ in covered})
    apis = builtin_apis([f for f in FRAMEWORKS if f in frameworks]) + list(extra_apis)
    known = {a.name for a in apis}
    for name in sorted({r.api for r in records} - known):
        result.not_assessed.append(f"API {name}: not a built-in API (pass its --api spec to include it)")
    ran = {r.check_id for r in records}
    targets = sorted({str(r.extra.get("target_framework")) for r in records if r.check == "porting"} - {"None"})
    scope = Scope(
        cases_root=cases_root,
        cases=cases,
        apis=apis,
        frameworks=frameworks,
        devices=list(DEVICES),
        dtypes=list(DTYPES),
        porting_targets=targets,
        strict=False,
    )
    for name in sorted({r.check for r in records}):
        kind = by_name(name)
        if kind is None:
            result.not_assessed.append(f"{name} checks: no planner is known for this kind of check")
            continue
        try:
            planned = [c.id for c in kind.plan(scope) if (framework_of(c), c.device, c.dtype) in covered]
        except Exception as exc:  # a planner's own failure should not hide the other kinds
            result.not_assessed.append(f"{name} checks: the planner failed: {type(exc).__name__}: {exc}")
            continue
        result.planned += len(planned)
        for check_id in planned:
            if check_id in ran:
                result.ran += 1
            else:
                result.missing.append(check_id)
    result.corpus_hash = corpus_hash(cases)
    return result


def header(m: Merge) -> dict:
    merged_from = []
    for source in m.runset.sources:
        nested = source.header.get("merged_from")
        if nested:
            merged_from += nested
        else:
            merged_from.append(
                {"source": source.path, "header": source.header, "complete": not source.incomplete_reasons}
            )
    hashes = {str(h.get("corpus_hash", "")) for s in m.runset.sources for h in s.shard_headers} - {""}
    return {
        "type": "run",
        "schema": SCHEMA_VERSION,
        "run_id": uuid.uuid4().hex[:12],
        "klconf": __version__,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "corpus_hash": hashes.pop() if len(hashes) == 1 else "",
        "argv": list(sys.argv),
        "merged_from": merged_from,
    }


def write(m: Merge, path: Path | str) -> Path:
    """Write the merged results file: header, every shard's framework events, the records, a footer."""
    path = Path(path)
    counts: dict[str, int] = defaultdict(int)
    with Writer(path) as writer:
        writer.write(jsonable(header(m)))
        for source in m.runset.sources:
            for event in source.results.framework_events:
                writer.write(jsonable({**event, "run_id": event.get("run_id") or source.run_id}))
        for record, source in zip(m.records, m.origin):
            event = record.to_json()
            event["extra"] = {**event.get("extra", {}), "run_id": record.extra.get("run_id") or source.run_id}
            writer.write(event)
            counts[record.verdict] += 1
        incomplete = [f"{s.path}: {'; '.join(s.incomplete_reasons)}" for s in m.runset.sources if s.incomplete_reasons]
        exits = [int(s.results.end.get("exitstatus", 0)) for s in m.runset.sources if s.results.end]
        plans = [p.to_json() for p in m.plans.plans] if m.plans else []
        writer.write(
            {
                "type": "end",
                "counts": dict(counts),
                "exitstatus": max(exits, default=0),
                "interrupted": bool(incomplete),
                "incomplete_shards": incomplete,
                "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                **({"plans": plans} if plans else {}),
            }
        )
    return path


def summary_lines(m: Merge, wrote: Path | None, keep: str) -> list[str]:
    per_source: defaultdict[str, int] = defaultdict(int)
    for source in m.origin:
        per_source[source.path] += 1
    lines = [
        f"merged {len(m.runset.sources)} file(s): {len(m.records):,} checks ("
        + ", ".join(f"{n:,} from {p}" for p, n in per_source.items())
        + ")"
    ]
    for s in m.runset.sources:
        if s.incomplete_reasons:
            lines.append(f"incomplete input {s.path}: {'; '.join(s.incomplete_reasons)}")
    if m.duplicates:
        lines.append(
            f"duplicates: {len(m.duplicates)} check id(s) appear in more than one input"
            + (f" (kept the {keep} occurrence)" if wrote else "")
            + ":"
        )
        lines += [
            f"  {d.check_id}: {d.first_verdict} in {d.first}, {d.second_verdict} in {d.second}"
            for d in m.duplicates[:MISSING_SHOWN]
        ]
        if len(m.duplicates) > MISSING_SHOWN:
            lines.append(f"  ... and {len(m.duplicates) - MISSING_SHOWN} more")
    lines += [f"conflict: {c}" for c in m.conflicts]
    lines += [f"note: {n}" for n in m.notes]
    if m.judge_plans and m.plans is not None and m.plans.plans:
        lines += plans_mod.summary_lines(m.plans)
    c = m.completeness
    if c is not None:
        lines.append(
            f"completeness (from the case corpus): {c.ran:,} of {c.planned:,} planned checks ran, "
            f"{len(c.missing):,} missing (within {len(c.covered)} framework/device/dtype combinations "
            "the inputs cover)"
        )
        if c.corpus_note:
            lines.append(f"  {c.corpus_note}")
        if c.missing:
            by_api = Counter(i.split("::")[1].split("[")[0] for i in c.missing if i.count("::") >= 3)
            lines.append(
                "  missing per API: "
                + ", ".join(f"{api} {n:,}" for api, n in by_api.most_common(12))
                + (" ..." if len(by_api) > 12 else "")
            )
        lines += [f"  missing: {i}" for i in c.missing[:MISSING_SHOWN]]
        if len(c.missing) > MISSING_SHOWN:
            lines.append(f"  ... and {len(c.missing) - MISSING_SHOWN} more")
        lines += [f"  not assessed: {n}" for n in c.not_assessed]
    if wrote:
        lines.append(f"wrote {wrote}")
    return lines
