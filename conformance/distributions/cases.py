"""Distribution case files: cases/**/*.yaml whose single top-level key is `distribution_cases`.

Same rules as the tensor-level loader (conformance/cases.py): YAML read by conformance/safe_yaml.py
(bounded resources, plain data only: a `!!python/...` tag is a problem, never an object),
duplicate keys rejected, and every problem named by file, line and field, with loading
going on so that `klconf cases check` lists all of them at once. The JSON Schema
(conformance/schema/distribution-case.schema.json) checks the shape of the file; this
module checks what it cannot: known families, each family's parameters, their domains,
batch shapes that broadcast, matching event sizes, and a pair the oracle covers.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..case_validation import most_specific, schema_message, tensor_shape
from ..cases import (
    CaseFileError,
    Problem,
    _dotted,
    case_content_hash,
    corpus_files,
    document_kind,
    read_document,
)
from . import closed_forms
from .families import FAMILIES, Family, batch_shape, event_size

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schema" / "distribution-case.schema.json"
KIND = "distribution_cases"
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Side:
    """One distribution of a case: its family and float64 parameters as the case states them."""

    family: str
    params: dict  # name -> read-only float64 ndarray

    def describe(self) -> str:
        shapes = ", ".join(f"{k}{list(v.shape)}" for k, v in self.params.items())
        return f"{self.family}({shapes})"


@dataclass(frozen=True, eq=False)  # identity semantics: hashable, usable as a cache key
class DistributionCase:
    id: str
    description: str
    tags: tuple[str, ...]
    p: Side
    q: Side
    batch: tuple[int, ...]
    expected: dict | None
    file: str
    line: int | None
    hash: str
    dtypes: tuple[str, ...] = DTYPES
    source: str | None = None

    @property
    def pair(self) -> str:
        return f"{self.p.family}||{self.q.family}"


def load_corpus(root: Path | str | None = None) -> tuple[list[DistributionCase], list[Problem]]:
    """Every distribution case under `root` (a file or a directory, searched recursively)."""
    found = corpus_files(root)
    if found is None:
        return [], [Problem(str(root), None, "", "no such file or directory")]
    root_, files = found
    cases: list[DistributionCase] = []
    problems: list[Problem] = []
    first: dict[str, DistributionCase] = {}
    for path in files:
        if document_kind(path, root_) != KIND:
            continue
        file_cases, file_problems = load_file(path)
        problems += file_problems
        for case in file_cases:
            if case.id in first:
                other = first[case.id]
                problems.append(
                    Problem(
                        case.file,
                        case.line,
                        "id",
                        f"duplicate case id {case.id!r} (first defined at {other.file}:{other.line})",
                    )
                )
                continue
            first[case.id] = case
            cases.append(case)
    return cases, problems


def load_cases(root: Path | str | None = None) -> list[DistributionCase]:
    """Strict variant: raise CaseFileError listing every problem."""
    cases, problems = load_corpus(root)
    if problems:
        raise CaseFileError(problems)
    return cases


def load_file(path: Path) -> tuple[list[DistributionCase], list[Problem]]:
    """Cases of one file; a file holding another kind of document yields nothing and no problem."""
    name, data, lines, problem = read_document(path)
    if problem:
        return [], [problem]
    if not (isinstance(data, dict) and KIND in data):
        return [], []
    assert lines is not None, f"{name}: a document read without a problem has its line map"

    problems = [Problem(name, lines.line_of(p), _dotted(p), m) for p, m in _schema_errors(data)]
    if problems:
        return [], problems
    cases = []
    for index, entry in enumerate(data[KIND]):
        base = (KIND, index)
        errors = [Problem(name, lines.line_of(base + p), _dotted(base + p), m) for p, m in semantic_errors(entry)]
        if errors:
            problems += errors
            continue
        cases.append(_build(entry, name, lines.line_of(base)))
    return cases, problems


def _build(entry: dict, file: str, line: int | None) -> DistributionCase:
    p, q = _side(entry["p"]), _side(entry["q"])
    return DistributionCase(
        id=entry["id"],
        description=entry["description"],
        tags=tuple(entry.get("tags", ())),
        p=p,
        q=q,
        batch=_pair_batch(entry["p"], entry["q"]),
        expected=entry.get("expected"),
        file=file,
        line=line,
        hash=case_content_hash(entry),
        dtypes=tuple(entry.get("dtypes", DTYPES)),
        source=entry.get("source"),
    )


def _side(spec: dict) -> Side:
    params = {}
    for prm in FAMILIES[spec["family"]].params:
        arr = np.asarray(spec[prm.name], dtype=np.float64)
        arr.setflags(write=False)
        params[prm.name] = arr
    return Side(spec["family"], params)


def _shapes(spec: dict) -> dict:
    return {k: np.shape(v) for k, v in spec.items() if k != "family"}


def _side_batch(spec: dict) -> tuple:
    """The batch shape of a side that passed `_side_errors` (which rejects parameters that do not broadcast)."""
    shape = batch_shape(FAMILIES[spec["family"]], _shapes(spec))
    assert shape is not None, f"{spec['family']}: a validated side's parameters broadcast"
    return shape


def _pair_batch(p: dict, q: dict) -> tuple:
    return tuple(np.broadcast_shapes(_side_batch(p), _side_batch(q)))


# --------------------------------------------------------------------------- validation


@functools.lru_cache(maxsize=1)
def _validator():
    import jsonschema

    return jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))


def _schema_errors(data: Any) -> list[tuple[tuple, str]]:
    errors = []
    for error in _validator().iter_errors(data):
        best = most_specific(error)
        errors.append((tuple(best.absolute_path), schema_message(best) + _number_hint(best.instance)))
    return sorted(set(errors), key=lambda e: tuple(map(str, e[0])))


def _number_hint(value: Any) -> str:
    """YAML 1.1 (PyYAML) reads 1.0e6 as a string: it wants a signed exponent."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return ""
        return (
            f" (YAML reads it as a string: write {value.lower().replace('e', 'e+', 1)} with a signed exponent)"
            if "e" in value.lower() and "e+" not in value.lower() and "e-" not in value.lower()
            else ""
        )
    return ""


def semantic_errors(entry: dict) -> list[tuple[tuple, str]]:
    """What the schema cannot say, as (path inside the case, message) pairs."""
    errors = []
    for side in ("p", "q"):
        errors += [((side,) + path, message) for path, message in _side_errors(entry[side])]
    if errors:
        return errors
    p, q = entry["p"], entry["q"]
    pf, qf = FAMILIES[p["family"]], FAMILIES[q["family"]]
    kp, kq = event_size(pf, _shapes(p)), event_size(qf, _shapes(q))
    if kp != kq:
        return [(("q",), f"event size {kq} differs from p's {kp}")]
    try:
        batch = _pair_batch(p, q)
    except ValueError:
        return [(("q",), f"batch shape {list(_side_batch(q))} does not broadcast with p's {list(_side_batch(p))}")]
    if not closed_forms.covered(pf.name, qf.name):
        reason = _not_covered_here(p, q, batch)  # a degenerate P (a point mass) may still have an exact value
        if reason:
            return [(("q", "family"), f"the oracle has no closed form for {pf.name} || {qf.name} ({reason})")]
    elif closed_forms.FAMILIES[pf.name].kind == "discrete":
        reason = _not_covered_here(p, q, batch)  # an exact finite sum may be too long at these parameters
        if reason:
            return [(("p",), reason)]
    expected = entry.get("expected")
    if expected:
        shape, message = tensor_shape(expected["kl"])
        if message:
            errors.append((("expected", "kl"), message))
        elif shape != batch:
            errors.append((("expected", "kl"), f"shape {list(shape)} does not match the batch shape {list(batch)}"))
    return errors


def _not_covered_here(p: dict, q: dict, batch: tuple) -> str | None:
    """Why the oracle has no value for some batch element at these parameters; None if it has them all.
    Exact sums over a binomial P's support are bounded over the whole batch, before any is computed."""
    if p["family"] == "binomial":
        counts = np.broadcast_to(np.asarray(p["total_count"], np.float64), batch)
        summed = q["family"] != "binomial" or np.any(counts != np.asarray(q["total_count"], np.float64))
        terms = float(np.sum(counts + 1))
        if summed and terms > closed_forms.FINITE_SUM_LIMIT:
            return (
                f"the exact sums over P's support would take {terms:,.0f} terms "
                f"(more than {closed_forms.FINITE_SUM_LIMIT:,} in one case)"
            )
    try:
        closed_forms.evaluate(p["family"], _side(p).params, q["family"], _side(q).params, batch)
    except closed_forms.NotCovered as exc:
        return str(exc)
    return None


def _side_errors(spec: dict) -> list[tuple[tuple, str]]:
    name = spec["family"]
    if name not in FAMILIES:
        return [(("family",), f"unknown family {name!r} (known: {', '.join(sorted(FAMILIES))})")]
    family = FAMILIES[name]
    given = set(spec) - {"family"}
    errors: list[tuple[tuple, str]] = []
    unknown = sorted(given - set(family.param_names))
    if unknown:
        errors.append(
            (
                (unknown[0],),
                f"unknown parameter(s) {', '.join(unknown)} for {name} (it takes {', '.join(family.param_names)})",
            )
        )
    for prm in family.params:
        if prm.name not in given:
            errors.append(((), f"{name} needs parameter {prm.name!r}"))
            continue
        shape, message = tensor_shape(spec[prm.name])
        message = message or _domain_error(prm.domain, np.asarray(spec[prm.name], np.float64), shape)
        if message:
            errors.append(((prm.name,), message))
    if errors:
        return errors
    return _family_errors(family, spec)


def _domain_error(domain: str, values: np.ndarray, shape: tuple) -> str | None:
    rank = {"weights": 1, "positive_vector": 1, "vector": 1, "tril": 2}.get(domain, 0)
    if len(shape) < rank:
        return f"needs at least {rank} axis(es) (the event), got a {'scalar' if not shape else f'shape {list(shape)}'}"
    if not np.all(np.isfinite(values)):
        return "NaN or infinite entries"
    checks = {
        "positive": (values > 0, "must be > 0"),
        "positive_vector": (values > 0, "must be > 0"),
        "nonnegative": (values >= 0, "must be >= 0"),
        "unit": ((values >= 0) & (values <= 1), "must lie in [0, 1]"),
        "open_unit": ((values > 0) & (values < 1), "must lie in (0, 1)"),
        "half_open_unit": ((values > 0) & (values <= 1), "must lie in (0, 1]"),
        "count": ((values >= 0) & (values == np.round(values)), "must be whole numbers >= 0"),
        "weights": (values >= 0, "must be >= 0"),
    }
    if domain in checks and not np.all(checks[domain][0]):
        bad = tuple(int(i) for i in np.argwhere(~checks[domain][0])[0])
        return f"{checks[domain][1]} (found {values[bad]!r} at {list(bad)})"
    if domain == "weights" and np.any(values.sum(axis=-1) <= 0):
        return "each row of weights needs a positive sum"
    if domain == "weights" and shape[-1] < 2:
        return "a categorical distribution needs at least 2 classes"
    if domain == "tril":
        if shape[-1] != shape[-2]:
            return f"a scale_tril must be square, got {list(shape[-2:])}"
        if np.any(np.triu(values, 1) != 0):
            return "a scale_tril must be lower triangular (entries above the diagonal are not 0)"
        if np.any(np.diagonal(values, axis1=-2, axis2=-1) <= 0):
            return "a scale_tril needs a positive diagonal"
    return None


def _family_errors(family: Family, spec: dict) -> list[tuple[tuple, str]]:
    shapes = _shapes(spec)
    if batch_shape(family, shapes) is None:
        batches = {p.name: list(shapes[p.name][: len(shapes[p.name]) - p.event_rank]) for p in family.params}
        return [((), f"parameters' batch shapes do not broadcast: {batches}")]
    if family.name == "uniform":
        low, high = np.broadcast_arrays(np.asarray(spec["low"], float), np.asarray(spec["high"], float))
        if np.any(low > high):  # low == high is the zero-width Uniform: the point mass at low
            return [(("high",), "must not be below low in any batch element")]
    if family.name == "mvn_tril" and shapes["scale_tril"][-1] != shapes["loc"][-1]:
        return [
            (
                ("scale_tril",),
                f"is {shapes['scale_tril'][-1]}x{shapes['scale_tril'][-1]} but loc has {shapes['loc'][-1]} dimensions",
            )
        ]
    if family.name == "mvn_diag" and shapes["scale_diag"][-1] != shapes["loc"][-1]:
        return [(("scale_diag",), f"has {shapes['scale_diag'][-1]} entries but loc has {shapes['loc'][-1]} dimensions")]
    return []
