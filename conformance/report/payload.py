"""The data the page's script filters: every check as a few small integers, and the worst failures' details.

Built one check event at a time, so a run of millions of checks never sits in memory as objects.
What checks share (API, options, device, dtype, verdict, kind of check) is a group, listed once
(`m.groups`, indices into string tables); a check is its case, its group and its headroom
(float32). Each per-check column travels as the bytes of the narrowest typed array that holds it,
base64-encoded: about 11 bytes a check, decoded by the browser into typed arrays without parsing
a number per check, and filtered group by group. Failing checks' details are embedded for the
FAILURE_DETAILS worst only, their strings interned in one table (a diagnosis or a reproduction
snippet shared by many failures is carried once).
"""

from __future__ import annotations

import base64
import math
import sys
from array import array
from typing import Any

import numpy as np

from ..results import FAILING, Record, number
from .text import cut, error_figures, fmt, framework_order, values_text

# Worst first: the colour of a matrix cell is that of its worst verdict.
SEVERITY = ("crash", "timeout", "error", "fail", "xfail", "pass", "unsupported", "skip")
FAILURE_DETAILS = 5000  # failing checks whose details the page embeds (the worst first)
REPRO_CHARS = 60000  # a reproduction snippet longer than this is cut (the results file has it whole)
TABLES = ("cases", "apis", "opts", "devices", "dtypes", "verdicts", "checks")
COLUMNS = ("c", "a", "o", "d", "t", "v", "k")  # one per table, in the same order


def finite(value: Any) -> float | None:
    """A record's number (float, int or a "nan"/"inf" string) when it is finite, else None."""
    if value.__class__ is float:  # the common case, first: x - x is 0 for finite x, nan otherwise
        return value if value - value == 0 else None
    try:
        v = number(value)
    except (TypeError, ValueError):
        return None
    return v if v is not None and math.isfinite(v) else None


class Payload:
    """Accumulates the matrix columns and the failure details from check events (parsed dicts).

    A check's table indices other than its case repeat across thousands of checks, so each distinct
    combination (a group: API, options, device, dtype, verdict, kind of check, plus the framework and
    declared convention the aggregation needs) is stored once and a check keeps only its case and group:
    `add` returns the group, whose `key` and running count the caller may use."""

    def __init__(self, detail_limit: int = FAILURE_DETAILS):
        self.detail_limit = detail_limit
        self.tables: dict[str, dict[str, int]] = {name: {} for name in TABLES}
        for verdict in SEVERITY:  # fixed order first, so the browser can rank verdicts by index
            self._index("verdicts", verdict)
        self.groups: dict[tuple, int] = {}  # (api, options, device, dtype, verdict, check, framework, convention)
        self.group_rows: list[tuple[int, ...]] = []  # per group: its indices into TABLES, in COLUMNS order
        self.case_column = array("I")
        self.group_column = array("I")
        self.headroom = array("f")
        self.failing = 0
        self._worst: list[tuple[tuple, int, dict]] = []  # (rank, check index, event), trimmed as it grows

    def _index(self, table: str, value: str) -> int:
        t = self.tables[table]
        found = t.get(value)
        if found is None:
            found = t[value] = len(t)
        return found

    def add(self, event: dict, key: tuple, headroom: float | None) -> int:
        """Record one check whose group key is `key` (see the class); return the group's number."""
        case_id, check_id = event["case_id"], event["check_id"]  # a malformed event fails before any change
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = len(self.group_rows)
            api, label, device, dtype, verdict, check = key[:6]
            self.group_rows.append(
                (
                    self._index("apis", api),
                    self._index("opts", label),
                    self._index("devices", device),
                    self._index("dtypes", dtype),
                    self._index("verdicts", verdict),
                    self._index("checks", check),
                )
            )
        index = len(self.headroom)
        cases = self.tables["cases"]
        case = cases.get(case_id)
        if case is None:
            case = cases[case_id] = len(cases)
        self.case_column.append(case)
        self.group_column.append(group)
        self.headroom.append(math.nan if headroom is None else headroom)
        if key[4] in FAILING:
            self.failing += 1
            self._worst.append((failure_rank(key[4], headroom, check_id), index, event))
            if len(self._worst) >= 2 * max(self.detail_limit, 1):
                self._trim()
        return group

    def group_counts(self) -> np.ndarray:
        """Checks per group."""
        return np.bincount(np.frombuffer(self.group_column, dtype=np.uint32), minlength=len(self.group_rows))

    def _trim(self) -> None:
        self._worst.sort(key=lambda item: item[0])
        del self._worst[self.detail_limit :]

    def result(self) -> dict:
        """The JSON the page embeds (see report.js for how it is read)."""
        self._trim()
        api_framework = {key[0]: key[6] for key in self.groups}
        frameworks = sorted(set(api_framework.values()), key=framework_order)
        matrix: dict[str, Any] = {name: list(t) for name, t in self.tables.items()}
        matrix["fws"] = frameworks
        matrix["apiFw"] = [frameworks.index(api_framework[api]) for api in matrix["apis"]]
        matrix["n"] = len(self.headroom)
        matrix["groups"] = {name: [row[at] for row in self.group_rows] for at, name in enumerate(COLUMNS[1:])}
        matrix["cols"] = {
            "c": _encode(np.frombuffer(self.case_column, dtype=np.uint32)),
            "g": _encode(np.frombuffer(self.group_column, dtype=np.uint32)),
            "h": _encode(np.frombuffer(self.headroom, dtype=np.float32)),
        }
        texts: dict[str, int] = {}
        failures = [failure_detail(Record.from_json(event), index, texts) for _, index, event in self._worst]
        return {
            "m": matrix,
            "failures": failures,
            "texts": list(texts),
            "failingTotal": self.failing,
            "failureLimit": self.detail_limit,
        }


def _encode(values: np.ndarray) -> dict:
    """A column as base64 of its narrowest typed array ("u8", "u16", "u32" or "f32"), little-endian."""
    if values.dtype == np.float32:
        kind, data = "f32", values
    else:
        top = int(values.max()) if values.size else 0
        kind = "u8" if top < 1 << 8 else "u16" if top < 1 << 16 else "u32"
        data = values.astype({"u8": np.uint8, "u16": np.uint16, "u32": np.uint32}[kind])
    raw = (
        data.astype(data.dtype.newbyteorder("<"), copy=False).tobytes() if sys.byteorder != "little" else data.tobytes()
    )
    return {"type": kind, "b64": base64.b64encode(raw).decode("ascii")}


def failure_rank(verdict: str, headroom: float | None, check_id: str) -> tuple:
    severity = SEVERITY.index(verdict) if verdict in SEVERITY else len(SEVERITY)
    return (severity, -(headroom if headroom is not None else math.inf), check_id)


def failure_detail(r: Record, index: int, texts: dict[str, int]) -> dict:
    """One failing check for the page; every string is an index into the shared text table."""
    repro = str(r.extra.get("repro", ""))
    if len(repro) > REPRO_CHARS:
        repro = repro[:REPRO_CHARS] + "\n# ... cut: the results file holds the whole snippet\n"

    def text(value: Any) -> int:
        value = str(value or "")
        found = texts.get(value)
        if found is None:
            found = texts[value] = len(texts)
        return found

    inferred = {k: v for k, v in r.extra.items() if k in ("inferred", "declared", "disagreements")}
    fields = {
        "id": r.check_id,
        "verdict": r.verdict,
        "kind": r.kind or "",
        "check": r.check,
        "message": cut(r.message),
        "reason": cut(r.reason),
        "diagnosis": cut(r.diagnosis),
        "convention": r.convention,
        "expected": values_text(r.expected),
        "observed": values_text(r.observed),
        "errors": error_figures(r),
        "override": r.tolerance_override,
        "output_dtype": r.output_dtype or "",
        "repro": repro,
        "repro_error": str(r.extra.get("repro_error", "")),
        "traceback": cut(str(r.extra.get("traceback", ""))),
        "extra": cut(fmt(inferred)) if r.check == "convention" else "",
    }
    detail: dict[str, Any] = {name: text(value) for name, value in fields.items()}
    detail.update(r=index, shape=r.shape, warnings=[text(cut(w, 500)) for w in r.warnings[:5]])
    return detail
