"""Result records: JSON lines, written as checks complete, read back tolerantly.

A results file is a sequence of JSON objects, one per line, each with a "type":
  run        the header: klconf version, corpus hash, machine, command line
  framework  a framework's versions, devices and numerics settings, when first loaded
  check      one check's outcome (see `conformance/schema/results.schema.json`)
  end        the footer: counts and exit status; a file without it is an interrupted run
Non-finite floats are written as the strings "nan", "inf" and "-inf" so that every line
is strict JSON (browsers' JSON.parse rejects NaN).
"""
from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from . import __version__

SCHEMA_VERSION = 1
VERDICTS = ("pass", "fail", "error", "timeout", "crash", "xfail", "unsupported", "skip")
FAILING = ("fail", "error", "timeout", "crash")
SUMMARY_LIMIT = 64  # arrays up to this many values are stored whole


def jsonable(value: Any) -> Any:
    """Strict-JSON form of numbers, arrays and containers."""
    if isinstance(value, float) or isinstance(value, np.floating):
        value = float(value)
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def number(value: Any) -> float | None:
    """Inverse of `jsonable` for one number."""
    if value is None:
        return None
    if isinstance(value, str):
        return float(value)
    return float(value)


def summarize(values: np.ndarray | None, worst_index: list[int] | None = None) -> Any:
    """Small arrays whole; large ones as shape, a sample and the value at the worst index."""
    if values is None:
        return None
    arr = np.asarray(values, dtype=np.float64)
    if arr.size <= SUMMARY_LIMIT:
        return jsonable(arr if arr.ndim else float(arr))
    summary = {"shape": list(arr.shape), "sample": jsonable(arr.ravel()[:8])}
    if worst_index is not None and len(worst_index) == arr.ndim:
        summary["worst_index"] = list(worst_index)
        summary["at_worst"] = jsonable(float(arr[tuple(worst_index)]))
    return summary


@dataclass
class Record:
    check_id: str
    case_id: str
    case_hash: str
    api: str
    framework: str
    device: str
    dtype: str
    options: dict
    verdict: str
    framework_version: dict = field(default_factory=dict)
    kind: str | None = None  # failure kind: value | nan | inf | shape | exception | timeout | crash
    message: str = ""
    reason: str = ""  # for skip, unsupported, xfail: why
    expected: Any = None
    observed: Any = None
    abs_error: float | None = None
    rel_error: float | None = None
    ulp_error: float | None = None
    tolerance: float | None = None
    headroom: float | None = None
    tolerance_override: str = ""
    output_dtype: str | None = None
    convention: str = ""
    diagnosis: str = ""
    warnings: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    shape: list | None = None
    tags: list = field(default_factory=list)
    duration_s: float = 0.0
    check: str = "value"  # which runner produced it: value, gradient, property, distribution
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        data = {"type": "check"}
        data.update(jsonable(self.__dict__))
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Record":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @property
    def failed(self) -> bool:
        return self.verdict in FAILING


def run_header(argv: list[str] | None = None, corpus_hash: str = "", **extra) -> dict:
    return {
        "type": "run",
        "schema": SCHEMA_VERSION,
        "run_id": uuid.uuid4().hex[:12],
        "klconf": __version__,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "corpus_hash": corpus_hash,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "argv": list(argv if argv is not None else sys.argv),
        **extra,
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


class Writer:
    """Appends one JSON line per event and flushes it, so an interrupted run keeps what it measured."""

    def __init__(self, path: Path | str, mode: str = "w"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, mode, encoding="utf-8")

    def write(self, event: dict) -> None:
        self._file.write(json.dumps(event, allow_nan=False, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass
class Results:
    """A results file read back: header, framework information, records and footer."""

    header: dict = field(default_factory=dict)
    frameworks: dict = field(default_factory=dict)  # name -> framework event
    records: list[Record] = field(default_factory=list)
    end: dict | None = None
    problems: list[str] = field(default_factory=list)  # lines that could not be read
    source: str = ""

    @property
    def complete(self) -> bool:
        return self.end is not None

    def counts(self) -> dict[str, int]:
        out = {v: 0 for v in VERDICTS}
        for r in self.records:
            out[r.verdict] = out.get(r.verdict, 0) + 1
        return out


def iter_events(path: Path | str) -> Iterator[tuple[int, dict | None, str]]:
    """(line number, event or None, problem) for every line; a torn or garbled line is a problem, not a crash."""
    with open(path, "rb") as f:
        for number_, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                event = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                torn = not raw.endswith(b"\n")
                yield number_, None, f"line {number_}: {'torn last line (interrupted write)' if torn else 'not JSON'}: {exc}"
                continue
            if not isinstance(event, dict) or "type" not in event:
                yield number_, None, f"line {number_}: not a klconf event"
                continue
            yield number_, event, ""


def read(path: Path | str) -> Results:
    results = Results(source=str(path))
    for line, event, problem in iter_events(path):
        if event is None:
            results.problems.append(problem)
            continue
        kind = event["type"]
        try:
            if kind == "run":
                results.header = event
            elif kind == "framework":
                results.frameworks[event.get("name", "?")] = event
            elif kind == "check":
                results.records.append(Record.from_json(event))
            elif kind == "end":
                results.end = event
            else:
                results.problems.append(f"line {line}: unknown event type {kind!r}")
        except TypeError as exc:
            results.problems.append(f"line {line}: malformed {kind} event: {exc}")
    return results


def read_many(paths: Iterable[Path | str]) -> list[Results]:
    return [read(p) for p in paths]
