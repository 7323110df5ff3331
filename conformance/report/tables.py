"""The report's tables built from few records: inferred conventions, porting equivalents, run information.

Convention and porting checks number in the hundreds even in a run of millions, so their records
are kept whole and tabled here; run information comes from each file's header and framework
events. Porting reasons and notes are numbered once (`Reasons`) and every cell refers to them, so
a reason shared by many cells is stated once on the page.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from ..results import FAILING, Record
from .model import RunSet, Source
from .text import TEXT_CHARS, cut, fmt, fmt_field, framework_order, option_label

CONVENTION_FIELDS = (
    "p_argument",
    "input_space",
    "elementwise",
    "reduction",
    "batch_divisor_1d",
    "zero_p",
    "zero_both",
    "zero_q",
    "clip_epsilon",
    "output_dtype",
    "accumulation",
)
HEADLINE_FIELDS = ("p_argument", "input_space", "reduction", "zero_both", "clip_epsilon")  # the overview's columns
PORTING_CODE_CHARS = 12000  # a snippet longer than this is cut in the page (the results file has it whole)


# --------------------------------------------------------------------------- conventions


def conventions(records: Iterable[Record], declared_by_call: dict[tuple[str, str, str], set[str]]) -> dict:
    """The inferred-conventions table: one row per API and option combination, one column per field.

    A field whose inferred value differs between devices or dtypes lists each value with where it
    was seen; a field that disagrees with the adapter's declaration is flagged with the declared value.
    """
    groups: dict[tuple[str, str, str], list[Record]] = defaultdict(list)
    not_inferred: Counter[str] = Counter()  # convention checks that inferred nothing (skipped, errored): why
    for r in records:
        if r.check != "convention":
            continue
        if _inferred(r):
            groups[(r.framework, r.api, option_label(r.options))].append(r)
        else:
            not_inferred[f"{r.verdict}: {r.reason or r.message or 'no inference recorded'}"[:300]] += 1
    skipped = [(reason, n) for reason, n in not_inferred.most_common(8)]
    if not groups:
        return {
            "rows": [],
            "fields": list(CONVENTION_FIELDS),
            "declared": declared_conventions(declared_by_call),
            "not_inferred": skipped,
        }
    extra_fields = sorted({f for recs in groups.values() for r in recs for f in _inferred(r)} - set(CONVENTION_FIELDS))
    fields = list(CONVENTION_FIELDS) + extra_fields
    rows = []
    for fw, api, label in sorted(groups, key=lambda k: (framework_order(k[0]), k[1], k[2])):
        recs = groups[(fw, api, label)]
        cells = []
        for name in fields:
            seen: dict[str, list[str]] = defaultdict(list)
            for r in recs:
                inferred = _inferred(r)
                if name in inferred:
                    seen[fmt_field(inferred[name])].append(f"{r.device}/{r.dtype}")
            declared = {
                fmt_field((r.extra.get("declared") or {}).get(name))
                for r in recs
                if name in (r.extra.get("declared") or {})
            }
            disagree = any(name in (r.extra.get("disagreements") or ()) for r in recs)
            evidence = sorted({str((r.extra.get("evidence") or {}).get(name, "")) for r in recs} - {""})
            if len(seen) <= 1:
                values = [(value, "") for value in seen] or [("?", "")]
            else:
                values = [
                    (value, ", ".join(where[:6]) + (" ..." if len(where) > 6 else ""))
                    for value, where in sorted(seen.items(), key=lambda kv: -len(kv[1]))
                ]
            cells.append(
                {
                    "shown": values,
                    "declared": ", ".join(sorted(declared)),
                    "disagree": disagree,
                    "varies": len(seen) > 1,
                    "evidence": " | ".join(evidence)[:TEXT_CHARS],
                }
            )
        verdicts = Counter(r.verdict for r in recs)
        rows.append(
            {
                "framework": fw,
                "api": api,
                "options": label,
                "cells": cells,
                "findings": sum(verdicts.get(v, 0) for v in FAILING),
                "records": len(recs),
            }
        )
    return {"rows": rows, "fields": fields, "declared": [], "not_inferred": skipped}


def _inferred(record: Record) -> dict:
    inferred = record.extra.get("inferred")
    return inferred if isinstance(inferred, dict) else {}


def declared_conventions(seen: dict[tuple[str, str, str], set[str]]) -> list[dict]:
    """Without convention records: the conventions the adapters declare, as value checks recorded them
    (`seen`: framework, API and option label -> declared conventions)."""
    return [
        {"framework": fw, "api": api, "options": label, "conventions": sorted(seen[(fw, api, label)])}
        for (fw, api, label) in sorted(seen, key=lambda k: (framework_order(k[0]), k[1], k[2]))
    ]


# --------------------------------------------------------------------------- porting


class Reasons:
    """Texts numbered in order of first use; the page lists each once and cells cite the number."""

    def __init__(self) -> None:
        self.numbers: dict[str, int] = {}

    def cite(self, text: str) -> int | None:
        text = text.strip()
        if not text:
            return None
        if text not in self.numbers:
            self.numbers[text] = len(self.numbers) + 1
        return self.numbers[text]

    def listed(self) -> list[tuple[int, str]]:
        return [(n, text) for text, n in self.numbers.items()]


def porting(records: RunSet | Iterable[Record]) -> dict:
    """The porting table: one row per source call (API and options), one column per target framework;
    each cell the equivalent's expression and how it fared on the corpus (records with check "porting").
    Reasons (why a case differs, notes, why a cell was not run) are numbered once in `reasons`."""
    records = records.records if isinstance(records, RunSet) else records
    reasons = Reasons()
    cells: dict[tuple[str, str, str], dict[str, dict]] = defaultdict(dict)
    targets: set[str] = set()
    for r in records:
        if r.check != "porting":
            continue
        target = str(r.extra.get("target_framework") or r.case_id.removeprefix("porting-to-"))
        targets.add(target)
        cells[(r.framework, r.api, option_label(r.options))][target] = _porting_cell(r, reasons)
    columns = sorted(targets, key=framework_order)
    rows: list[dict] = []
    counts: dict[str, Counter[str]] = {t: Counter() for t in columns}
    for key in sorted(cells, key=lambda k: (framework_order(k[0]), k[1], k[2])):
        framework, api, label = key
        row = [cells[key].get(t) for t in columns]
        for t, cell in zip(columns, row):
            if cell:
                counts[t][cell["status"]] += 1
        rows.append({"framework": framework, "api": api, "options": label, "cells": row})
    totals = [
        {
            "target": t,
            "verified": counts[t]["verified"],
            "differs": counts[t]["differs"],
            "other": sum(n for s, n in counts[t].items() if s not in ("verified", "differs")),
        }
        for t in columns
    ]
    return {"targets": columns, "rows": rows, "totals": totals, "reasons": reasons.listed()}


def _porting_cell(r: Record, reasons: Reasons) -> dict:
    extra = r.extra
    status = {"pass": "verified", "fail": "differs"}.get(r.verdict, r.verdict)
    differs = [
        {
            "case": str(d.get("case", "")),
            "dtypes": ", ".join(map(str, d.get("dtypes") or ())),
            "reason": reasons.cite(cut(str(d.get("reason", "")), 1000)),
        }
        for d in extra.get("differs_on") or ()
        if isinstance(d, dict)
    ]
    outside: dict = extra["out_of_domain"] if isinstance(extra.get("out_of_domain"), dict) else {}
    half: dict = extra["float16"] if isinstance(extra.get("float16"), dict) else {}
    code = str(extra.get("code", ""))
    if len(code) > PORTING_CODE_CHARS:
        code = code[:PORTING_CODE_CHARS] + "\n# ... cut: the results file holds the whole snippet\n"
    why = cut(r.reason or (r.message if status not in ("verified", "differs") else ""), 600)
    return {
        "status": status,
        "verdict": r.verdict,
        "expression": str(extra.get("expression", "")),
        "code": code,
        "verified": extra.get("verified_cases"),
        "differs": differs,
        "outside": [str(d.get("case", "")) for d in outside.get("differs_on") or () if isinstance(d, dict)],
        "half": [str(d.get("case", "")) for d in half.get("differs_on") or () if isinstance(d, dict)],
        "not_applicable": len(extra.get("not_applicable") or ()),
        "notes": [n for n in (reasons.cite(cut(str(note), 600)) for note in extra.get("notes") or ()) if n],
        "reason": reasons.cite(why),
        "reason_text": why,
    }


# --------------------------------------------------------------------------- run information


def run_info(runset: RunSet) -> list[dict]:
    """Per source file: completeness, the machine header(s), and each framework's versions and settings."""
    out = []
    for source in runset.sources:
        frameworks = [
            {
                "name": ev.get("name", "?"),
                "run_id": ev.get("run_id", ""),
                "versions": fmt(ev.get("versions") or {}),
                "devices": fmt(ev.get("devices") or []),
                "settings": [(str(k), fmt(v)) for k, v in (ev.get("settings") or {}).items()],
            }
            for ev in source.results.framework_events
        ]
        out.append(
            {
                "path": source.path,
                "incomplete": source.incomplete_reasons,
                "machines": _machines(source),
                "frameworks": frameworks,
                "records": source.results.checks,
                "end": source.results.end or {},
            }
        )
    return out


_HEADER_ORDER = (
    "source",
    "run_id",
    "started",
    "klconf",
    "corpus_hash",
    "schema",
    "python",
    "numpy",
    "platform",
    "machine",
    "cpu",
    "cpu_count",
    "gpus",
    "env",
    "argv",
)


def _machines(source: Source) -> list[list[tuple[str, str]]]:
    machines = []
    for header in source.shard_headers:
        rows = []
        for key in _HEADER_ORDER + tuple(sorted(set(header) - set(_HEADER_ORDER) - {"type", "merged_from"})):
            if key not in header:
                continue
            value = header[key]
            if key == "gpus":
                value = (
                    "; ".join(
                        f"{g.get('name', '?')} (driver {g.get('driver', '?')}, {g.get('memory', '?')})" for g in value
                    )
                    or "none"
                )
            elif key == "argv":
                value = " ".join(map(str, value))
            elif key == "env":
                value = fmt(value) if value else "(none of the numerics variables set)"
            rows.append((key, fmt(value) if not isinstance(value, str) else value))
        machines.append(rows)
    return machines
