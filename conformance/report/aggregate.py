"""Everything the report page shows, computed once in Python so the page opens fast.

The page gets small tables (summary, conventions, accuracy, run information) rendered as
HTML, and one compact JSON payload for what must react to filters: the case x API matrix
(one entry per check, stored column-wise as indices into string tables) and the failing
checks' details (rendered page by page in the browser, never all at once).
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

import numpy as np

from ..dtypes import DTYPES
from ..frameworks import FRAMEWORKS
from ..results import FAILING, VERDICTS, Record, number
from .model import RunSet, Source

CONVENTION_FIELDS = ("p_argument", "input_space", "elementwise", "reduction", "batch_divisor_1d", "zero_p",
                     "zero_both", "zero_q", "clip_epsilon", "output_dtype", "accumulation")
# Worst first: the colour of a matrix cell is that of its worst verdict.
SEVERITY = ("crash", "timeout", "error", "fail", "xfail", "pass", "unsupported", "skip")
FAILURE_DETAILS = 5000  # failing checks whose details the page embeds (the worst first)
REPRO_CHARS = 60000  # a reproduction snippet longer than this is cut (the results file has it whole)
TEXT_CHARS = 4000  # messages, diagnoses and tracebacks are cut to this many characters


def option_label(options: dict) -> str:
    return ",".join(f"{k}={'None' if v is None else v}" for k, v in options.items())


def fmt(value: Any) -> str:
    """A convention field or setting value as short text."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}={fmt(v)}" for k, v in value.items())
    return str(value)


def fmt_field(value: Any) -> str:
    """A convention field's value; per-dtype mappings (output_dtype, accumulation) read compactly,
    per-argument mappings (input_space) as argument: value in call order."""
    if isinstance(value, dict) and value:
        if not all(k in DTYPES for k in value):
            return ", ".join(f"{k}: {fmt(v)}" for k, v in value.items())
        if all(str(k) == str(v) for k, v in value.items()):
            return "same as input"
        if len({fmt(v) for v in value.values()}) == 1:
            return f"{fmt(next(iter(value.values())))} (every dtype)"
        return ", ".join(f"{k} → {fmt(v)}" for k, v in value.items())
    return fmt(value)


def framework_order(name: str) -> tuple:
    return (FRAMEWORKS.index(name) if name in FRAMEWORKS else len(FRAMEWORKS), name)


# --------------------------------------------------------------------------- summary


def summary(runset: RunSet) -> dict:
    """Counts per framework x device and verdict, with a total row."""
    verdicts = runset.verdicts()
    counts: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for r in runset.records:
        counts[(r.framework, r.device)][r.verdict] += 1
    rows = []
    for (fw, device) in sorted(counts, key=lambda k: (framework_order(k[0]), k[1])):
        c = counts[(fw, device)]
        rows.append({"framework": fw, "device": device, "counts": [c.get(v, 0) for v in verdicts],
                     "total": sum(c.values()), "failing": sum(c.get(v, 0) for v in FAILING)})
    total = Counter(r.verdict for r in runset.records)
    return {"verdicts": verdicts, "rows": rows,
            "total": {"counts": [total.get(v, 0) for v in verdicts], "total": len(runset.records),
                      "failing": sum(total.get(v, 0) for v in FAILING)}}


# --------------------------------------------------------------------------- conventions


def conventions(runset: RunSet) -> dict:
    """The inferred-conventions table: one row per API and option combination, one column per field.

    A field whose inferred value differs between devices or dtypes lists each value with where it
    was seen; a field that disagrees with the adapter's declaration is flagged with the declared value.
    """
    groups: dict[tuple[str, str, str], list[Record]] = defaultdict(list)
    not_inferred = Counter()  # convention checks that inferred nothing (skipped, errored): why
    for r in runset.records:
        if r.check != "convention":
            continue
        if _inferred(r):
            groups[(r.framework, r.api, option_label(r.options))].append(r)
        else:
            not_inferred[f"{r.verdict}: {r.reason or r.message or 'no inference recorded'}"[:300]] += 1
    skipped = [(reason, n) for reason, n in not_inferred.most_common(8)]
    if not groups:
        return {"rows": [], "fields": list(CONVENTION_FIELDS), "declared": declared_conventions(runset),
                "not_inferred": skipped}
    extra_fields = sorted({f for recs in groups.values() for r in recs for f in _inferred(r)} - set(CONVENTION_FIELDS))
    fields = list(CONVENTION_FIELDS) + extra_fields
    rows = []
    for (fw, api, label) in sorted(groups, key=lambda k: (framework_order(k[0]), k[1], k[2])):
        recs = groups[(fw, api, label)]
        cells = []
        for name in fields:
            seen: dict[str, list[str]] = defaultdict(list)
            for r in recs:
                inferred = _inferred(r)
                if name in inferred:
                    seen[fmt_field(inferred[name])].append(f"{r.device}/{r.dtype}")
            declared = {fmt_field((r.extra.get("declared") or {}).get(name)) for r in recs
                        if name in (r.extra.get("declared") or {})}
            disagree = any(name in (r.extra.get("disagreements") or ()) for r in recs)
            evidence = sorted({str((r.extra.get("evidence") or {}).get(name, "")) for r in recs} - {""})
            if len(seen) <= 1:
                values = [(value, "") for value in seen] or [("?", "")]
            else:
                values = [(value, ", ".join(where[:6]) + (" ..." if len(where) > 6 else ""))
                          for value, where in sorted(seen.items(), key=lambda kv: -len(kv[1]))]
            cells.append({"shown": values, "declared": ", ".join(sorted(declared)), "disagree": disagree,
                          "varies": len(seen) > 1, "evidence": " | ".join(evidence)[:TEXT_CHARS]})
        verdicts = Counter(r.verdict for r in recs)
        rows.append({"framework": fw, "api": api, "options": label, "cells": cells,
                     "findings": sum(verdicts.get(v, 0) for v in FAILING), "records": len(recs)})
    return {"rows": rows, "fields": fields, "declared": [], "not_inferred": skipped}


def _inferred(record: Record) -> dict:
    inferred = record.extra.get("inferred")
    return inferred if isinstance(inferred, dict) else {}


def declared_conventions(runset: RunSet) -> list[dict]:
    """Without convention records: the conventions the adapters declare, as value checks recorded them."""
    seen: dict[tuple[str, str, str], set] = defaultdict(set)
    for r in runset.records:
        if r.convention:
            seen[(r.framework, r.api, option_label(r.options))].add(r.convention)
    return [{"framework": fw, "api": api, "options": label, "conventions": sorted(seen[(fw, api, label)])}
            for (fw, api, label) in sorted(seen, key=lambda k: (framework_order(k[0]), k[1], k[2]))]


# --------------------------------------------------------------------------- porting


PORTING_CODE_CHARS = 12000  # a snippet longer than this is cut in the page (the results file has it whole)


def porting(runset: RunSet) -> dict:
    """The porting table: one row per source call (API and options), one column per target framework;
    each cell the equivalent's expression and how it fared on the corpus (records with check "porting")."""
    cells: dict[tuple[str, str, str], dict[str, dict]] = defaultdict(dict)
    targets: set[str] = set()
    for r in runset.records:
        if r.check != "porting":
            continue
        target = str(r.extra.get("target_framework") or r.case_id.removeprefix("porting-to-"))
        targets.add(target)
        cells[(r.framework, r.api, option_label(r.options))][target] = _porting_cell(r)
    columns = sorted(targets, key=framework_order)
    rows, counts = [], {t: Counter() for t in columns}
    for key in sorted(cells, key=lambda k: (framework_order(k[0]), k[1], k[2])):
        framework, api, label = key
        row = [cells[key].get(t) for t in columns]
        for t, cell in zip(columns, row):
            if cell:
                counts[t][cell["status"]] += 1
        rows.append({"framework": framework, "api": api, "options": label, "cells": row})
    totals = [{"target": t, "verified": counts[t]["verified"], "differs": counts[t]["differs"],
               "other": sum(n for s, n in counts[t].items() if s not in ("verified", "differs"))} for t in columns]
    return {"targets": columns, "rows": rows, "totals": totals}


def _porting_cell(r: Record) -> dict:
    extra = r.extra
    status = {"pass": "verified", "fail": "differs"}.get(r.verdict, r.verdict)
    differs = [{"case": str(d.get("case", "")), "dtypes": ", ".join(map(str, d.get("dtypes") or ())),
                "reason": _cut(str(d.get("reason", "")), 1000)}
               for d in extra.get("differs_on") or () if isinstance(d, dict)]
    outside = extra.get("out_of_domain") if isinstance(extra.get("out_of_domain"), dict) else {}
    half = extra.get("float16") if isinstance(extra.get("float16"), dict) else {}
    code = str(extra.get("code", ""))
    if len(code) > PORTING_CODE_CHARS:
        code = code[:PORTING_CODE_CHARS] + "\n# ... cut: the results file holds the whole snippet\n"
    return {
        "status": status, "verdict": r.verdict, "expression": str(extra.get("expression", "")), "code": code,
        "verified": extra.get("verified_cases"), "differs": differs,
        "outside": [str(d.get("case", "")) for d in outside.get("differs_on") or () if isinstance(d, dict)],
        "half": [str(d.get("case", "")) for d in half.get("differs_on") or () if isinstance(d, dict)],
        "not_applicable": len(extra.get("not_applicable") or ()),
        "notes": [_cut(str(n), 600) for n in extra.get("notes") or ()],
        "reason": _cut(r.reason or (r.message if status not in ("verified", "differs") else ""), 600),
    }


# --------------------------------------------------------------------------- accuracy


def accuracy(runset: RunSet) -> dict:
    """Error against the oracle per API, device and dtype: ULPs, relative error and headroom (error/tolerance)."""
    groups: dict[tuple, dict[str, list]] = defaultdict(lambda: {"ulp": [], "rel": [], "headroom": [], "n": 0, "fail": 0})
    for r in runset.records:
        values = [_finite(r.ulp_error), _finite(r.rel_error), _finite(r.headroom)]
        if all(v is None for v in values):
            continue
        g = groups[(r.framework, r.api, r.device, r.dtype)]
        g["n"] += 1
        g["fail"] += r.verdict in FAILING
        for key, v in zip(("ulp", "rel", "headroom"), values):
            if v is not None:
                g[key].append(v)
    devices = {k[2] for k in groups}
    dtype_order = ("float16", "bfloat16", "float32", "float64")
    rows = []
    for key in sorted(groups, key=lambda k: (framework_order(k[0]), k[1], k[2],
                                             dtype_order.index(k[3]) if k[3] in dtype_order else 9, k[3])):
        fw, api, device, dtype = key
        g = groups[key]
        rows.append({"framework": fw, "api": api, "device": device, "dtype": dtype, "n": g["n"], "fail": g["fail"],
                     "label": f"{api} · {dtype}" + (f" · {device}" if len(devices) > 1 else ""),
                     "ulp": _stats(g["ulp"]), "rel": _stats(g["rel"]), "headroom": _stats(g["headroom"])})
    return {"rows": rows}


def _finite(value) -> float | None:
    try:
        v = number(value)
    except (TypeError, ValueError):
        return None
    return v if v is not None and math.isfinite(v) else None


def _stats(values: list[float]) -> dict | None:
    if not values:
        return None
    arr = np.asarray(values, dtype=np.float64)
    p50, p95 = np.percentile(arr, [50, 95])
    return {"min": float(arr.min()), "p50": float(p50), "p95": float(p95), "max": float(arr.max()), "n": int(arr.size)}


# --------------------------------------------------------------------------- run information


def run_info(runset: RunSet) -> list[dict]:
    """Per source file: completeness, the machine header(s), and each framework's versions and settings."""
    out = []
    for source in runset.sources:
        frameworks = [{"name": ev.get("name", "?"), "run_id": ev.get("run_id", ""),
                       "versions": fmt(ev.get("versions") or {}), "devices": fmt(ev.get("devices") or []),
                       "settings": [(str(k), fmt(v)) for k, v in (ev.get("settings") or {}).items()]}
                      for ev in source.results.framework_events]
        out.append({"path": source.path, "incomplete": source.incomplete_reasons, "machines": _machines(source),
                    "frameworks": frameworks, "records": len(source.results.records),
                    "end": source.results.end or {}})
    return out


_HEADER_ORDER = ("source", "run_id", "started", "klconf", "corpus_hash", "schema", "python", "numpy", "platform",
                 "machine", "cpu", "cpu_count", "gpus", "env", "argv")


def _machines(source: Source) -> list[list[tuple[str, str]]]:
    machines = []
    for header in source.shard_headers:
        rows = []
        for key in _HEADER_ORDER + tuple(sorted(set(header) - set(_HEADER_ORDER) - {"type", "merged_from"})):
            if key not in header:
                continue
            value = header[key]
            if key == "gpus":
                value = "; ".join(f"{g.get('name', '?')} (driver {g.get('driver', '?')}, {g.get('memory', '?')})"
                                  for g in value) or "none"
            elif key == "argv":
                value = " ".join(map(str, value))
            elif key == "env":
                value = fmt(value) if value else "(none of the numerics variables set)"
            rows.append((key, fmt(value) if not isinstance(value, str) else value))
        machines.append(rows)
    return machines


# --------------------------------------------------------------------------- matrix and failures (JSON payload)


def payload(runset: RunSet) -> dict:
    """Column-wise check table for the matrix, plus the failing checks' details."""
    tables: dict[str, dict[str, int]] = {k: {} for k in ("cases", "apis", "fws", "devices", "dtypes", "verdicts",
                                                          "opts", "checks")}

    def index(table: str, value: str) -> int:
        t = tables[table]
        if value not in t:
            t[value] = len(t)
        return t[value]

    for v in SEVERITY:  # fixed order first, so the browser can rank verdicts by index
        index("verdicts", v)
    for fw in sorted({r.framework for r in runset.records}, key=framework_order):
        index("fws", fw)
    api_fw: dict[int, int] = {}
    cols = {k: [] for k in ("c", "a", "o", "d", "t", "v", "k", "h", "f")}
    failing = [i for i, r in enumerate(runset.records) if r.verdict in FAILING]
    failing.sort(key=lambda i: _failure_rank(runset.records[i]))
    detail_of = {i: n for n, i in enumerate(failing[:FAILURE_DETAILS])}
    for i, r in enumerate(runset.records):
        a = index("apis", r.api)
        api_fw[a] = index("fws", r.framework)
        cols["c"].append(index("cases", r.case_id))
        cols["a"].append(a)
        cols["o"].append(index("opts", option_label(r.options)))
        cols["d"].append(index("devices", r.device))
        cols["t"].append(index("dtypes", r.dtype))
        cols["v"].append(index("verdicts", r.verdict))
        cols["k"].append(index("checks", r.check))
        h = _finite(r.headroom)
        cols["h"].append(float(f"{h:.3g}") if h is not None else None)
        cols["f"].append(detail_of.get(i, -1))
    matrix = {name: list(t) for name, t in tables.items()}
    matrix["apiFw"] = [api_fw[a] for a in range(len(tables["apis"]))]
    matrix.update(cols)
    failures = [failure_detail(runset.records[i], i) for i in failing[:FAILURE_DETAILS]]
    return {"m": matrix, "failures": failures, "failingTotal": len(failing), "failureLimit": FAILURE_DETAILS}


def _failure_rank(r: Record) -> tuple:
    severity = SEVERITY.index(r.verdict) if r.verdict in SEVERITY else len(SEVERITY)
    headroom = _finite(r.headroom)
    return (severity, -(headroom if headroom is not None else math.inf), r.check_id)


def failure_detail(r: Record, index: int) -> dict:
    repro = str(r.extra.get("repro", ""))
    if len(repro) > REPRO_CHARS:
        repro = repro[:REPRO_CHARS] + "\n# ... cut: the results file holds the whole snippet\n"
    return {
        "r": index, "id": r.check_id, "verdict": r.verdict, "kind": r.kind or "", "check": r.check,
        "message": _cut(r.message), "reason": _cut(r.reason), "diagnosis": _cut(r.diagnosis),
        "convention": r.convention, "expected": values_text(r.expected), "observed": values_text(r.observed),
        "errors": error_figures(r), "override": r.tolerance_override, "output_dtype": r.output_dtype or "",
        "shape": r.shape, "warnings": [_cut(w, 500) for w in r.warnings[:5]], "repro": repro,
        "repro_error": str(r.extra.get("repro_error", "")), "traceback": _cut(str(r.extra.get("traceback", ""))),
        "extra": _cut(fmt({k: v for k, v in r.extra.items() if k in ("inferred", "declared", "disagreements")}))
        if r.check == "convention" else "",
    }


def error_figures(r: Record) -> str:
    """abs / rel / ulp error, tolerance and headroom as one line (empty when the check measured none)."""
    parts = []
    for label, value, spec in (("abs", r.abs_error, ".3g"), ("rel", r.rel_error, ".3g"), ("ulp", r.ulp_error, ".3g"),
                               ("tolerance", r.tolerance, ".3g"), ("headroom", r.headroom, ".3g")):
        if value is None:
            continue
        try:
            parts.append(f"{label} {format(number(value), spec)}")
        except (TypeError, ValueError):
            parts.append(f"{label} {value}")
    return ", ".join(parts)


def values_text(values: Any, limit: int = 2000) -> str:
    """Expected or observed values as text: a scalar, nested lists, or a large array's summary."""
    if values is None:
        return "—"
    if isinstance(values, dict) and "shape" in values:
        parts = [f"array of shape {values.get('shape')}"]
        if "worst_index" in values:
            parts.append(f"at the worst element {values['worst_index']}: {values.get('at_worst')}")
        parts.append(f"first values: {_compact(values.get('sample'))}")
        return "; ".join(parts)[:limit]
    text = _compact(values)
    return text if len(text) <= limit else text[:limit] + " ..."


def _compact(values: Any) -> str:
    if isinstance(values, list):
        return "[" + ", ".join(_compact(v) for v in values) + "]"
    if isinstance(values, float):
        return repr(values)
    return str(values)


def _cut(text: str, limit: int = TEXT_CHARS) -> str:
    text = str(text or "")
    return text if len(text) <= limit else text[:limit] + " ..."


# --------------------------------------------------------------------------- everything


def build(runset: RunSet) -> dict:
    return {
        "summary": summary(runset),
        "conventions": conventions(runset),
        "porting": porting(runset),
        "accuracy": accuracy(runset),
        "run_info": run_info(runset),
        "payload": payload(runset),
        "complete": runset.complete,
        "incomplete": [(s.path, s.incomplete_reasons) for s in runset.sources if s.incomplete_reasons],
        "duplicates": runset.duplicates,
        "problems": runset.problems(),
        "verdicts_known": VERDICTS,
    }
