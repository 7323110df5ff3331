"""Everything the report page shows, computed in one pass over the check events.

`Aggregator.add` takes one check event at a time (a parsed results line, or a Record's fields) and
keeps only what the page needs: verdict counts per framework and device, error figures per API
and dtype (as packed float arrays), the declared conventions, the few convention and porting
records whole, and the matrix columns and worst failures (`payload.Payload`). Memory grows by a
few dozen bytes a check, so a report of millions of checks streams its results files
(`model.scan`) instead of reading them into Records.
"""
from __future__ import annotations

from array import array
from collections import Counter, defaultdict

import numpy as np

from ..results import FAILING, VERDICTS, Record
from .model import RunSet
from .payload import FAILURE_DETAILS, SEVERITY, Payload, finite  # noqa: F401 (the page's limits, for callers)
from .tables import CONVENTION_FIELDS, HEADLINE_FIELDS, conventions, porting, run_info  # noqa: F401
from .text import cut, error_figures, fmt, fmt_field, framework_order, option_label, values_text  # noqa: F401 (diff, junit)

DTYPE_ORDER = ("float16", "bfloat16", "float32", "float64")
NOT_RUN = ("skip", "unsupported", "xfail")  # verdicts whose reasons the overview lists, each reason once
NOT_RUN_SHOWN = 8
HEADLINE_ROWS = 16


class Aggregator:
    """One pass over check events; `result` turns what was kept into the page's data."""

    def __init__(self, detail_limit: int = FAILURE_DETAILS):
        self.counts: Counter = Counter()  # (framework, device, verdict) -> checks
        self.errors: dict[tuple, dict] = {}  # (framework, api, device, dtype) -> packed error figures
        self.declared: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        self.kept: list[Record] = []  # convention and porting records, whole
        self.not_run: Counter = Counter()  # (verdict, reason) -> checks, for skip, unsupported and xfail
        self.payload = Payload(detail_limit)

    def add(self, event: dict) -> None:
        framework, device, verdict = event["framework"], event["device"], event["verdict"]
        self.counts[(framework, device, verdict)] += 1
        if verdict in NOT_RUN:
            self.not_run[(verdict, event.get("reason") or "no reason recorded")] += 1
        if event.get("check", "value") in ("convention", "porting"):
            self.kept.append(Record.from_json(event))
        convention = event.get("convention")
        if convention:
            self.declared[(framework, event["api"], option_label(event["options"]))].add(convention)
        if event.get("headroom") is not None or event.get("ulp_error") is not None or event.get("rel_error") is not None:
            self._add_errors(event, framework, device, verdict)
        self.payload.add(event)

    def _add_errors(self, event: dict, framework: str, device: str, verdict: str) -> None:
        """ULP and relative error are undefined where the exact value is 0 (the relative error is then
        infinite, and the ULP error counts subnormal spacings: 1e-17 / 5e-324 = 2e306 in float64): such a
        check adds its headroom only, and is counted as `undefined` rather than charted at 1e300."""
        ulp, rel, headroom = finite(event.get("ulp_error")), finite(event.get("rel_error")), finite(event.get("headroom"))
        undefined = event.get("rel_error") is not None and rel is None
        if ulp is None and rel is None and headroom is None and not undefined:
            return
        key = (framework, event["api"], device, event["dtype"])
        group = self.errors.get(key)
        if group is None:
            group = self.errors[key] = {"ulp": array("d"), "rel": array("d"), "headroom": array("d"), "n": 0,
                                        "fail": 0, "undefined": 0}
        group["n"] += 1
        group["fail"] += verdict in FAILING
        if undefined:
            group["undefined"] += 1
        else:
            if ulp is not None:
                group["ulp"].append(ulp)
            if rel is not None:
                group["rel"].append(rel)
        if headroom is not None:
            group["headroom"].append(headroom)

    # ------------------------------------------------------------------ results

    def verdicts(self) -> list[str]:
        """Known verdicts in their canonical order, then any others present, alphabetically."""
        present = {v for (_, _, v) in self.counts}
        return [v for v in VERDICTS if v in present] + sorted(present - set(VERDICTS))

    def summary(self) -> dict:
        """Counts per framework x device and verdict, with a total row."""
        verdicts = self.verdicts()
        per: dict[tuple[str, str], Counter] = defaultdict(Counter)
        for (fw, device, verdict), n in self.counts.items():
            per[(fw, device)][verdict] += n
        rows = []
        for (fw, device) in sorted(per, key=lambda k: (framework_order(k[0]), k[1])):
            c = per[(fw, device)]
            rows.append({"framework": fw, "device": device, "counts": [c.get(v, 0) for v in verdicts],
                         "total": sum(c.values()), "failing": sum(c.get(v, 0) for v in FAILING)})
        total: Counter = Counter()
        for (_, _, verdict), n in self.counts.items():
            total[verdict] += n
        return {"verdicts": verdicts, "rows": rows,
                "total": {"counts": [total.get(v, 0) for v in verdicts], "total": sum(total.values()),
                          "failing": sum(total.get(v, 0) for v in FAILING)}}

    def accuracy(self) -> dict:
        """Error against the oracle per API, device and dtype: ULPs, relative error and headroom (error/tolerance)."""
        devices = {k[2] for k in self.errors}
        rows = []
        for key in sorted(self.errors, key=lambda k: (framework_order(k[0]), k[1], k[2],
                                                      DTYPE_ORDER.index(k[3]) if k[3] in DTYPE_ORDER else 9, k[3])):
            fw, api, device, dtype = key
            g = self.errors[key]
            rows.append({"framework": fw, "api": api, "device": device, "dtype": dtype, "n": g["n"], "fail": g["fail"],
                         "undefined": g["undefined"],
                         "label": f"{api} · {dtype}" + (f" · {device}" if len(devices) > 1 else ""),
                         "ulp": _stats(g["ulp"]), "rel": _stats(g["rel"]), "headroom": _stats(g["headroom"])})
        return {"rows": rows, "undefined": sum(r["undefined"] for r in rows)}

    def result(self, runset: RunSet) -> dict:
        """The page's data; `runset` gives the sources (headers, problems, duplicates), not the records."""
        table = conventions(self.kept, self.declared)
        ported = porting(self.kept)
        return {
            "summary": self.summary(),
            "conventions": table,
            "headline": headline(table),
            "not_run": [(verdict, cut(reason, 300), n) for (verdict, reason), n in self.not_run.most_common(NOT_RUN_SHOWN)],
            "porting": ported,
            "badges": porting_badges(ported),
            "accuracy": self.accuracy(),
            "run_info": run_info(runset),
            "payload": self.payload.result(),
            "complete": runset.complete,
            "incomplete": [(s.path, s.incomplete_reasons) for s in runset.sources if s.incomplete_reasons],
            "duplicates": runset.duplicates,
            "problems": runset.problems(),
            "verdicts_known": VERDICTS,
        }


def _stats(values: array) -> dict | None:
    if not values:
        return None
    arr = np.frombuffer(values, dtype=np.float64)
    p50, p95 = np.percentile(arr, [50, 95])
    return {"min": float(arr.min()), "p50": float(p50), "p95": float(p95), "max": float(arr.max()), "n": int(arr.size)}


def headline(table: dict) -> dict:
    """The overview's conventions table: the fields a porter asks about first, one row per API (its first
    option combination) with how many of its combinations have findings; `more`: rows left to the full table."""
    fields = [f for f in HEADLINE_FIELDS if f in table["fields"]]
    at = [table["fields"].index(f) for f in fields]
    per_api: dict[tuple[str, str], list[dict]] = {}
    for row in table["rows"]:
        per_api.setdefault((row["framework"], row["api"]), []).append(row)
    rows = []
    for (framework, api), group in list(per_api.items())[:HEADLINE_ROWS]:
        first = group[0]
        rows.append({"framework": framework, "api": api, "options": first["options"], "combinations": len(group),
                     "with_findings": sum(1 for r in group if r["findings"]), "findings": first["findings"],
                     "cells": [first["cells"][i] for i in at]})
    return {"fields": fields, "rows": rows, "more": len(table["rows"]) - len(rows)}


def porting_badges(table: dict) -> dict:
    """The overview's porting matrix: source calls whose equivalents differ first, up to HEADLINE_ROWS."""
    order = sorted(range(len(table["rows"])),
                   key=lambda i: (not any(c and c["status"] == "differs" for c in table["rows"][i]["cells"]), i))
    shown = order[:HEADLINE_ROWS]
    return {"rows": [dict(table["rows"][i], index=i) for i in shown], "more": len(order) - len(shown)}


def build(runset: RunSet, detail_limit: int = FAILURE_DETAILS) -> dict:
    """The page's data for results already read into Records (small runs, tests); large ones stream."""
    aggregator = Aggregator(detail_limit)
    for record in runset.records:
        aggregator.add(vars(record))  # a Record's fields are a check event's keys
    return aggregator.result(runset)
