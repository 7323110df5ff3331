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

import contextlib
import functools
import gc
import json
import math
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, machine
from .outcomes import FAILING, VERDICT_NAMES

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("schema") / "results.schema.json"
VERDICTS = VERDICT_NAMES  # each one's meaning: conformance/outcomes.py
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
    kind: str | None = None  # failure kind: conformance/outcomes.py FAILURE_KINDS
    message: str = ""
    reason: str = ""  # for skip, unsupported, xfail: why
    expected: Any = None
    observed: Any = None
    abs_error: float | None = None
    rel_error: float | None = None
    ulp_error: float | None = None
    tolerance: float | None = None
    headroom: float | None = None
    expected_bound: float | None = None  # certified bound on |expected - exact| where `tolerance` is taken
    expected_certified: str = ""  # how the expected values were certified
    tolerance_override: str = ""
    output_dtype: str | None = None
    convention: str = ""
    diagnosis: str = ""
    warnings: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    shape: list | None = None
    tags: list = field(default_factory=list)
    duration_s: float = 0.0
    check: str = "value"  # the kind of check: conformance/outcomes.py CHECK_KINDS
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        data = {"type": "check"}
        data.update(jsonable(self.__dict__))
        return data

    @classmethod
    def from_json(cls, data: dict) -> Record:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @property
    def failed(self) -> bool:
        return self.verdict in FAILING

    def take_judgement(self, verdict: Any, observed: Any, expected: Any) -> None:
        """A judgement (`conformance/judge.py`) of `observed` against `expected` into this record, for every kind
        that judges values: the verdict, the errors and the tolerance at the worst element, the bound the
        expected values were certified to there, both arrays summarised around that element, and, where
        float64's own resolution kept some elements' bounds above the judge's share of their tolerance,
        how many (`extra["bound_floor"]`, with how many of them were within their bound of the tolerance)."""
        self.verdict, self.kind, self.message = verdict.verdict, verdict.kind, verdict.message
        self.abs_error, self.rel_error, self.ulp_error = verdict.abs_error, verdict.rel_error, verdict.ulp_error
        self.tolerance, self.headroom = verdict.tolerance, verdict.headroom
        self.expected_bound, self.expected_certified = verdict.bound, verdict.certified
        self.observed = summarize(observed, verdict.worst_index)
        self.expected = summarize(expected, verdict.worst_index)
        floor = verdict.details.get("bound_floor", 0)
        if floor:
            self.extra["bound_floor"] = {"elements": floor, "uncertain": verdict.details.get("uncertain", 0)}


def run_header(argv: list[str] | None = None, corpus_hash: str = "", **extra) -> dict:
    return {
        "type": "run",
        "schema": SCHEMA_VERSION,
        "run_id": uuid.uuid4().hex[:12],
        "klconf": __version__,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "corpus_hash": corpus_hash,
        **machine.description(),
        "argv": list(argv if argv is not None else sys.argv),
        **extra,
    }


class ResultsUnwritable(Exception):
    """The results file could not be made or took no more lines: the disk is full, or the file or its folder
    is read-only or was removed under the run. Raised by `Writer`; a run stops on it, since a check whose
    record cannot be kept is a check lost."""

    def __init__(self, path: Path, error: OSError):
        super().__init__(f"cannot write {path}: {error.strerror or error}")
        self.path, self.error = path, error


class Writer:
    """Appends one JSON line per event and flushes it, so an interrupted run keeps what it measured."""

    def __init__(self, path: Path | str, mode: str = "w"):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, mode, encoding="utf-8")
        except OSError as exc:
            raise ResultsUnwritable(self.path, exc) from exc

    def write(self, event: dict) -> None:
        line = json.dumps(event, allow_nan=False, separators=(",", ":")) + "\n"
        try:
            self._file.write(line)
            self._file.flush()
        except OSError as exc:
            raise ResultsUnwritable(self.path, exc) from exc

    def close(self) -> None:
        if not self._file.closed:
            try:
                self._file.close()
            except OSError:  # what the buffer still held could not be written: a write has said so already
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass
class Results:
    """A results file read back: header, framework information, records and footer."""

    header: dict = field(default_factory=dict)
    frameworks: dict = field(default_factory=dict)  # name -> framework event
    framework_events: list[dict] = field(
        default_factory=list
    )  # all of them, in order (a merged file has several per name)
    records: list[Record] = field(default_factory=list)
    end: dict | None = None
    problems: list[str] = field(default_factory=list)  # lines that could not be read
    source: str = ""
    checks: int = 0  # check events read (kept in `records` by `read`, passed on by `stream`)

    @property
    def complete(self) -> bool:
        return self.end is not None

    def counts(self) -> dict[str, int]:
        out = {v: 0 for v in VERDICTS}
        for r in self.records:
            out[r.verdict] = out.get(r.verdict, 0) + 1
        return out


def _fast_loads() -> Callable[[bytes], Any]:
    """orjson's parser where installed (about 3x faster than json on results lines), else json's."""
    try:
        import orjson
    except ImportError:
        return json.loads
    return orjson.loads


def iter_events(path: Path | str) -> Iterator[tuple[int, dict | None, str]]:
    """(line number, event or None, problem) for every line; a torn or garbled line is a problem, not a crash.

    A line the fast parser refuses is given to json too, so both accept exactly the same files (NaN
    literals from other writers included)."""
    loads = _fast_loads()
    with open(path, "rb") as f:
        for number_, raw in enumerate(f, start=1):
            try:
                event = loads(raw)
            except ValueError:
                if raw.isspace():
                    continue
                try:
                    event = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, ValueError) as exc:
                    what = "not JSON" if raw.endswith(b"\n") else "torn last line (interrupted write)"
                    yield number_, None, f"line {number_}: {what}: {exc}"
                    continue
            if event.__class__ is not dict or "type" not in event:
                yield number_, None, f"line {number_}: not a klconf event"
                continue
            yield number_, event, ""


# Full JSON Schema validation costs about 0.3 ms per check record (30 s for 100k), so the reader
# validates every header, framework and footer event, the first SAMPLE_HEAD check records and every
# SAMPLE_STRIDE-th after them, and gives every record a cheap test of its required fields and types.
SAMPLE_HEAD = 64
SAMPLE_STRIDE = 1000
VALIDATION = ("sample", "all", "none")


def read(path: Path | str, validate: str = "sample") -> Results:
    """Read a results file; unreadable lines and schema violations become `problems`, never exceptions.

    validate: "sample" (default; see SAMPLE_HEAD), "all" (every event) or "none".
    """
    results = Results(source=str(path))
    return stream(path, lambda event: results.records.append(Record.from_json(event)), validate, results)


def stream(
    path: Path | str, on_check: Callable[[dict], None], validate: str = "sample", into: Results | None = None
) -> Results:
    """Read a results file without keeping its records: each valid check event (a dict, as parsed) goes to
    `on_check` in file order, and the Results returned hold everything else (header, framework events,
    footer, problems, the number of check events passed on). Reports of millions of checks read this way,
    in memory bounded by what the caller keeps. A check event that `on_check` rejects (TypeError,
    ValueError, AttributeError, KeyError or IndexError, before changing anything) is a problem, like a
    malformed line."""
    if validate not in VALIDATION:
        raise ValueError(f"validate must be one of {VALIDATION}, not {validate!r}")
    results = into if into is not None else Results(source=str(path))
    with _cyclic_gc_paused():
        _read_into(results, path, validate, on_check)
    return results


@contextlib.contextmanager
def _cyclic_gc_paused():
    """Parsed events hold no reference cycles, but building 100k of them triggers full collections
    that scan everything already read: pausing the collector halves the time of reading a large run."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _read_into(results: Results, path: Path | str, validate: str, on_check: Callable[[dict], None]) -> None:
    checks_seen = 0
    for line, event, problem in iter_events(path):
        if event is None:
            results.problems.append(problem)
            continue
        kind = event["type"]
        if validate != "none":
            full = validate == "all" or kind != "check" or checks_seen < SAMPLE_HEAD or checks_seen % SAMPLE_STRIDE == 0
            if kind == "check":
                checks_seen += 1
                full = full or not _plausible_check(event)
            errors = schema_errors(event) if full else []
            if errors:
                results.problems.append(
                    f"line {line}: {kind} event does not match the results schema: {errors[0]}"
                    + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")
                )
                if kind == "check" and not _plausible_check(event):
                    continue  # a record without its identity cannot be shown or compared
        try:
            if kind == "run":
                results.header = event
            elif kind == "framework":
                results.frameworks[event.get("name", "?")] = event
                results.framework_events.append(event)
            elif kind == "check":
                on_check(event)
                results.checks += 1
            elif kind == "end":
                results.end = event
            else:
                results.problems.append(f"line {line}: unknown event type {kind!r}")
        except (TypeError, ValueError, AttributeError) as exc:
            results.problems.append(f"line {line}: malformed {kind} event: {exc}")
        except LookupError as exc:
            results.problems.append(f"line {line}: malformed {kind} event: no {exc}")


def _plausible_check(event: dict) -> bool:
    """The cheap test every check record gets: its identity fields are strings and options a mapping."""
    get = event.get
    return (
        get("check_id").__class__ is str
        and get("case_id").__class__ is str
        and get("case_hash").__class__ is str
        and get("api").__class__ is str
        and get("framework").__class__ is str
        and get("device").__class__ is str
        and get("dtype").__class__ is str
        and get("verdict").__class__ is str
        and get("options").__class__ is dict
        and get("extra", {}).__class__ is dict
    )


@functools.lru_cache(maxsize=1)
def _validators() -> dict:
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    whole = jsonschema.Draft202012Validator(schema)
    per_type = {
        kind: jsonschema.Draft202012Validator({"$ref": f"#/$defs/{kind}", "$defs": schema["$defs"]})
        for kind in ("run", "framework", "check", "end")
    }
    return {"*": whole, **per_type}


def schema_errors(event: dict) -> list[str]:
    """Messages for each way `event` departs from conformance/schema/results.schema.json."""
    validators = _validators()
    validator = validators.get(event.get("type") if isinstance(event, dict) else None, validators["*"])
    out = []
    for error in validator.iter_errors(event):
        where = "/".join(str(p) for p in error.absolute_path)
        out.append(f"{where}: {error.message}" if where else error.message)
    return out


def read_many(paths: Iterable[Path | str]) -> list[Results]:
    return [read(p) for p in paths]
