"""Everything the report page shows, computed in one pass over the check events.

`Aggregator.add` takes one check event at a time (a parsed results line, or a Record's fields) and
keeps only what the page needs: verdict counts per framework and device, error figures per API
and dtype (as packed float arrays), the declared conventions, the few convention and porting
records whole, and the matrix columns and worst failures (`payload.Payload`). What it keeps grows
by a few dozen bytes a check (model.scan adds the check id, to find duplicates), so a report of
millions of checks streams its results files instead of reading them into Records: a million take
about 500 MiB at peak.
"""

from __future__ import annotations

from array import array
from collections import Counter, defaultdict
from typing import Any

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
        self.payload = Payload(detail_limit)  # per check: its case and group (see Payload); counts come from it
        self.errors: dict[tuple, dict] = {}  # (framework, api, device, dtype) -> packed error figures
        self.errors_of_group: list[dict] = []  # per payload group: its entry in `errors`
        self.kept: list[Record] = []  # convention and porting records, whole
        self.not_run: Counter = Counter()  # (verdict, reason) -> checks, for skip, unsupported and xfail
        self._labels: dict[tuple, str] = {}

    def add(self, event: dict) -> None:
        verdict, check = event["verdict"], event.get("check") or "value"
        key = (
            event["api"],
            self._label(event["options"]),
            event["device"],
            event["dtype"],
            verdict,
            check,
            event["framework"],
            event.get("convention") or "",
        )
        headroom = finite(event.get("headroom"))
        whole = Record.from_json(event) if check in ("convention", "porting") else None  # may reject the event
        group = self.payload.add(event, key, headroom)  # the last step that may: nothing is counted before it
        if whole is not None:
            self.kept.append(whole)
        if group == len(self.errors_of_group):
            self.errors_of_group.append(self._errors_entry(key))
        if verdict in NOT_RUN:
            self.not_run[(verdict, event.get("reason") or "no reason recorded")] += 1
        rel = event.get("rel_error")
        if rel is not None or headroom is not None or event.get("ulp_error") is not None:
            self._add_errors(self.errors_of_group[group], event, rel, headroom, verdict)

    def _label(self, options: dict) -> str:
        """The option label, cached by the options' items (most runs have a few dozen distinct ones)."""
        try:
            key = tuple(options.items())
            label = self._labels.get(key)
            if label is None:
                label = self._labels[key] = option_label(options)
            return label
        except TypeError:  # an unhashable option value (a list): not cached
            return option_label(options)

    def _errors_entry(self, key: tuple) -> dict:
        api, _, device, dtype, _, _, framework, _ = key
        entry = self.errors.get((framework, api, device, dtype))
        if entry is None:
            entry = self.errors[(framework, api, device, dtype)] = {
                "ulp": array("d"),
                "rel": array("d"),
                "headroom": array("d"),
                "n": 0,
                "fail": 0,
                "undefined": 0,
            }
        return entry

    @staticmethod
    def _add_errors(group: dict, event: dict, rel_raw: Any, headroom: float | None, verdict: str) -> None:
        """ULP and relative error are undefined where the exact value is 0 (the relative error is then
        infinite, and the ULP error counts subnormal spacings: 1e-17 / 5e-324 = 2e306 in float64): such a
        check adds its headroom only, and is counted as `undefined` rather than charted at 1e300."""
        group["n"] += 1
        if verdict in FAILING:
            group["fail"] += 1
        rel = finite(rel_raw)
        if rel_raw is not None and rel is None:
            group["undefined"] += 1
        else:
            ulp = finite(event.get("ulp_error"))
            if ulp is not None:
                group["ulp"].append(ulp)
            if rel is not None:
                group["rel"].append(rel)
        if headroom is not None:
            group["headroom"].append(headroom)

    # ------------------------------------------------------------------ results

    def _counts(self) -> Counter:
        """(framework, device, verdict) -> checks."""
        counts: Counter = Counter()
        for key, n in zip(self.payload.groups, self.payload.group_counts().tolist()):
            counts[(key[6], key[2], key[4])] += n
        return counts

    def _declared(self) -> dict[tuple[str, str, str], set[str]]:
        """(framework, API, option label) -> the conventions the value checks declared."""
        declared: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        for api, label, _, _, _, _, framework, convention in self.payload.groups:
            if convention:
                declared[(framework, api, label)].add(convention)
        return declared

    def verdicts(self) -> list[str]:
        """Known verdicts in their canonical order, then any others present, alphabetically."""
        present = {key[4] for key in self.payload.groups}
        return [v for v in VERDICTS if v in present] + sorted(present - set(VERDICTS))

    def summary(self) -> dict:
        """Counts per framework x device and verdict, with a total row."""
        verdicts, counts = self.verdicts(), self._counts()
        per: dict[tuple[str, str], Counter] = defaultdict(Counter)
        for (fw, device, verdict), n in counts.items():
            per[(fw, device)][verdict] += n
        rows = []
        for fw, device in sorted(per, key=lambda k: (framework_order(k[0]), k[1])):
            c = per[(fw, device)]
            rows.append(
                {
                    "framework": fw,
                    "device": device,
                    "counts": [c.get(v, 0) for v in verdicts],
                    "total": sum(c.values()),
                    "failing": sum(c.get(v, 0) for v in FAILING),
                }
            )
        total: Counter = Counter()
        for (_, _, verdict), n in counts.items():
            total[verdict] += n
        return {
            "verdicts": verdicts,
            "rows": rows,
            "total": {
                "counts": [total.get(v, 0) for v in verdicts],
                "total": sum(total.values()),
                "failing": sum(total.get(v, 0) for v in FAILING),
            },
        }

    def accuracy(self) -> dict:
        """Error against the oracle per API, device and dtype: ULPs, relative error and headroom (error/tolerance)."""
        measured = {key: g for key, g in self.errors.items() if g["n"]}  # every group has an entry, used or not
        devices = {k[2] for k in measured}
        rows = []
        for key in sorted(
            measured,
            key=lambda k: (
                framework_order(k[0]),
                k[1],
                k[2],
                DTYPE_ORDER.index(k[3]) if k[3] in DTYPE_ORDER else 9,
                k[3],
            ),
        ):
            fw, api, device, dtype = key
            g = measured[key]
            rows.append(
                {
                    "framework": fw,
                    "api": api,
                    "device": device,
                    "dtype": dtype,
                    "n": g["n"],
                    "fail": g["fail"],
                    "undefined": g["undefined"],
                    "label": f"{api} · {dtype}" + (f" · {device}" if len(devices) > 1 else ""),
                    "ulp": _stats(g["ulp"]),
                    "rel": _stats(g["rel"]),
                    "headroom": _stats(g["headroom"]),
                }
            )
        return {"rows": rows, "undefined": sum(r["undefined"] for r in rows)}

    def result(self, runset: RunSet) -> dict:
        """The page's data; `runset` gives the sources (headers, problems, duplicates), not the records."""
        table = conventions(self.kept, self._declared())
        ported = porting(self.kept)
        return {
            "summary": self.summary(),
            "conventions": table,
            "headline": headline(table),
            "not_run": [
                (verdict, cut(reason, 300), n) for (verdict, reason), n in self.not_run.most_common(NOT_RUN_SHOWN)
            ],
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
        rows.append(
            {
                "framework": framework,
                "api": api,
                "options": first["options"],
                "combinations": len(group),
                "with_findings": sum(1 for r in group if r["findings"]),
                "findings": first["findings"],
                "cells": [first["cells"][i] for i in at],
            }
        )
    return {"fields": fields, "rows": rows, "more": len(table["rows"]) - len(rows)}


def porting_badges(table: dict) -> dict:
    """The overview's porting matrix: source calls whose equivalents differ first, up to HEADLINE_ROWS."""
    order = sorted(
        range(len(table["rows"])),
        key=lambda i: (not any(c and c["status"] == "differs" for c in table["rows"][i]["cells"]), i),
    )
    shown = order[:HEADLINE_ROWS]
    return {"rows": [dict(table["rows"][i], index=i) for i in shown], "more": len(order) - len(shown)}


def build(runset: RunSet, detail_limit: int = FAILURE_DETAILS) -> dict:
    """The page's data for results already read into Records (small runs, tests); large ones stream."""
    aggregator = Aggregator(detail_limit)
    for record in runset.records:
        aggregator.add(vars(record))  # a Record's fields are a check event's keys
    return aggregator.result(runset)
