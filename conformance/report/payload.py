"""The data the page's script filters: every check as a few small integers, and the worst failures' details.

Built one check event at a time, so a run of millions of checks never sits in memory as objects.
Each check is a row of columns (case, API, options, device, dtype, verdict, kind of check: indices
into string tables; headroom as float32), and each column travels as the bytes of the narrowest
typed array that holds it, base64-encoded: about 13 bytes a check, decoded by the browser into
typed arrays without parsing a number per check. Failing checks' details are embedded for the
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
from .text import cut, error_figures, fmt, framework_order, option_label, values_text

# Worst first: the colour of a matrix cell is that of its worst verdict.
SEVERITY = ("crash", "timeout", "error", "fail", "xfail", "pass", "unsupported", "skip")
FAILURE_DETAILS = 5000  # failing checks whose details the page embeds (the worst first)
REPRO_CHARS = 60000  # a reproduction snippet longer than this is cut (the results file has it whole)
TABLES = ("cases", "apis", "opts", "devices", "dtypes", "verdicts", "checks")
COLUMNS = ("c", "a", "o", "d", "t", "v", "k")  # one per table, in the same order


def finite(value: Any) -> float | None:
    """A record's number (float, int or a "nan"/"inf" string) when it is finite, else None."""
    try:
        v = number(value)
    except (TypeError, ValueError):
        return None
    return v if v is not None and math.isfinite(v) else None


class Payload:
    """Accumulates the matrix columns and the failure details from check events (parsed dicts)."""

    def __init__(self, detail_limit: int = FAILURE_DETAILS):
        self.detail_limit = detail_limit
        self.tables: dict[str, dict[str, int]] = {name: {} for name in TABLES}
        for verdict in SEVERITY:  # fixed order first, so the browser can rank verdicts by index
            self._index("verdicts", verdict)
        self.columns = {name: array("I") for name in COLUMNS}
        self.headroom = array("f")
        self.api_framework: dict[str, str] = {}
        self.failing = 0
        self._worst: list[tuple[tuple, int, dict]] = []  # (rank, check index, event), trimmed as it grows

    def _index(self, table: str, value: str) -> int:
        t = self.tables[table]
        found = t.get(value)
        if found is None:
            found = t[value] = len(t)
        return found

    def add(self, event: dict) -> None:
        index = len(self.headroom)
        api, verdict = event["api"], event["verdict"]
        self.api_framework.setdefault(api, event["framework"])
        index_of, columns = self._index, self.columns
        columns["c"].append(index_of("cases", event["case_id"]))
        columns["a"].append(index_of("apis", api))
        columns["o"].append(index_of("opts", option_label(event["options"])))
        columns["d"].append(index_of("devices", event["device"]))
        columns["t"].append(index_of("dtypes", event["dtype"]))
        columns["v"].append(index_of("verdicts", verdict))
        columns["k"].append(index_of("checks", event.get("check", "value")))
        headroom = finite(event.get("headroom"))
        self.headroom.append(math.nan if headroom is None else headroom)
        if verdict in FAILING:
            self.failing += 1
            self._worst.append((failure_rank(verdict, headroom, event["check_id"]), index, event))
            if len(self._worst) >= 2 * max(self.detail_limit, 1):
                self._trim()

    def _trim(self) -> None:
        self._worst.sort(key=lambda item: item[0])
        del self._worst[self.detail_limit:]

    def result(self) -> dict:
        """The JSON the page embeds (see report.js for how it is read)."""
        self._trim()
        frameworks = sorted(set(self.api_framework.values()), key=framework_order)
        matrix: dict[str, Any] = {name: list(t) for name, t in self.tables.items()}
        matrix["fws"] = frameworks
        matrix["apiFw"] = [frameworks.index(self.api_framework[api]) for api in matrix["apis"]]
        matrix["n"] = len(self.headroom)
        matrix["cols"] = {name: _encode(np.frombuffer(col, dtype=np.uint32) if len(col) else np.zeros(0, np.uint32))
                          for name, col in self.columns.items()}
        matrix["cols"]["h"] = _encode(np.frombuffer(self.headroom, dtype=np.float32) if len(self.headroom)
                                      else np.zeros(0, np.float32))
        texts: dict[str, int] = {}
        failures = [failure_detail(Record.from_json(event), index, texts) for _, index, event in self._worst]
        return {"m": matrix, "failures": failures, "texts": list(texts), "failingTotal": self.failing,
                "failureLimit": self.detail_limit}


def _encode(values: np.ndarray) -> dict:
    """A column as base64 of its narrowest typed array ("u8", "u16", "u32" or "f32"), little-endian."""
    if values.dtype == np.float32:
        kind, data = "f32", values
    else:
        top = int(values.max()) if values.size else 0
        kind = "u8" if top < 1 << 8 else "u16" if top < 1 << 16 else "u32"
        data = values.astype({"u8": np.uint8, "u16": np.uint16, "u32": np.uint32}[kind])
    raw = data.astype(data.dtype.newbyteorder("<"), copy=False).tobytes() if sys.byteorder != "little" \
        else data.tobytes()
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
        "id": r.check_id, "verdict": r.verdict, "kind": r.kind or "", "check": r.check, "message": cut(r.message),
        "reason": cut(r.reason), "diagnosis": cut(r.diagnosis), "convention": r.convention,
        "expected": values_text(r.expected), "observed": values_text(r.observed), "errors": error_figures(r),
        "override": r.tolerance_override, "output_dtype": r.output_dtype or "", "repro": repro,
        "repro_error": str(r.extra.get("repro_error", "")), "traceback": cut(str(r.extra.get("traceback", ""))),
        "extra": cut(fmt(inferred)) if r.check == "convention" else "",
    }
    detail: dict[str, Any] = {name: text(value) for name, value in fields.items()}
    detail.update(r=index, shape=r.shape, warnings=[text(cut(w, 500)) for w in r.warnings[:5]])
    return detail
