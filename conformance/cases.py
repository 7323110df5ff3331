"""Case files: safe YAML loading, schema validation and the Case record.

Every problem is reported as a `Problem` naming file, line and field, and loading goes
on so that `klconf cases check` can list all of them at once. YAML is read by
conformance/safe_yaml.py, with bounded size, depth, element count and scalar length, and
plain data only: a `!!python/...` tag is a problem, never an object.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import generators, safe_yaml
from .safe_yaml import dotted as _dotted

SCHEMA_PATH = Path(__file__).with_name("schema") / "case.schema.json"
DEFAULT_CASES_DIR = Path(__file__).resolve().parent.parent / "cases"
CASE_FILE_GLOB = "*.yaml"
# A YAML file under cases/ holds one kind of document, named by its single top-level key. This
# loader reads "cases" (tensor-level); the other kinds have their own loaders. A file that cannot be
# read is reported by exactly one loader: the one its kind is guessed for (see `document_kind`).
KIND = "cases"
OTHER_KINDS = ("distribution_cases", "expectations")
KIND_FOLDERS = {"distributions": "distribution_cases", "expectations": "expectations"}
_KIND_LINE = re.compile(r"^(cases|distribution_cases|expectations)\s*:", re.M)
SEED_LIMIT = 2**63  # PCG64 takes any non-negative integer; beyond this a seed is a typo


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class CaseFileError(Exception):
    """Raised by the strict loaders; carries every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(map(str, problems)))


class Distribution:
    """One side of a case: literal values or a generator, in probability or logit space."""

    def __init__(self, spec: dict):
        self.spec = spec

    @property
    def generated(self) -> bool:
        return "generator" in self.spec

    @property
    def space(self) -> str:
        """'probs' or 'logits'."""
        if self.generated:
            return generators.SPACE[self.spec["generator"]]
        return "probs" if "probs" in self.spec else "logits"

    @functools.cached_property
    def values(self) -> np.ndarray:
        """The float64 truth, exactly as the case states it (before any dtype rounding)."""
        if self.generated:
            values = generators.generate(self.spec)[1]
        else:
            values = np.asarray(self.spec[self.space], dtype=np.float64)
        values.setflags(write=False)
        return values

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.spec["shape"]) if self.generated else np.shape(self.spec[self.space])

    def describe(self) -> str:
        if self.generated:
            params = ", ".join(f"{k}={v}" for k, v in self.spec.items() if k not in ("generator", "sha256"))
            return f"{self.spec['generator']}({params})"
        return f"{self.space} {list(self.shape)}"

    def __repr__(self) -> str:
        return f"Distribution({self.describe()})"


@dataclass(frozen=True, eq=False)  # identity semantics: a loaded case is hashable and cacheable
class Case:
    id: str
    description: str
    tags: tuple[str, ...]
    p: Distribution
    q: Distribution
    expected: dict | None
    file: str
    line: int | None
    hash: str
    dtypes: tuple[str, ...] | None = None
    out_of_domain: bool = False
    source: str | None = None
    broadcast: bool = False
    properties: tuple[str, ...] = ()

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the result's elementwise terms (p and q broadcast together)."""
        return tuple(np.broadcast_shapes(self.p.shape, self.q.shape)) if self.broadcast else self.p.shape

    @property
    def shape_class(self) -> str:
        ndim = len(self.shape)
        if ndim and self.shape[0] == 0:
            return "empty"
        return {0: "scalar", 1: "1d", 2: "2d", 3: "3d"}.get(ndim, f"{ndim}d")


# --------------------------------------------------------------------------- loading


def corpus_files(root: Path | str | None) -> tuple[Path, list[Path]] | None:
    """The YAML files a corpus root names (itself if a file, else every *.yaml below it); None if it is neither."""
    root = Path(root) if root else DEFAULT_CASES_DIR
    if root.is_file():
        return root, [root]
    if root.is_dir():
        return root, sorted(p for p in root.rglob(CASE_FILE_GLOB) if p.is_file())
    return None


def document_kind(path: Path, root: Path) -> str:
    """Which kind of document a file holds: its single top-level key when it parses; otherwise the
    kind its text names at the start of a line, else the kind of the folder it sits in, else "cases"."""
    try:
        data, _ = safe_yaml.load_path(path)
    except safe_yaml.YamlError:
        data = None
        try:
            found = _KIND_LINE.search(safe_yaml.read_text(path))
        except safe_yaml.YamlError:
            found = None
        if found:
            return found.group(1)
    if isinstance(data, dict) and len(data) == 1 and next(iter(data)) in OTHER_KINDS + (KIND,):
        return next(iter(data))
    parts = path.relative_to(root).parts[:-1] if path != root else ()
    return next((KIND_FOLDERS[p] for p in reversed(parts) if p in KIND_FOLDERS), KIND)


def load_corpus(root: Path | str | None = None) -> tuple[list[Case], list[Problem]]:
    """Load every tensor-level case file under `root` (recursively); return cases and all problems.
    A corpus may hold tensor-level cases, distribution cases or both; one with neither is a problem."""
    found = corpus_files(root)
    if found is None:
        return [], [Problem(str(root), None, "", "no such file or directory")]
    root_, files = found
    kinds = {path: document_kind(path, root_) for path in files}
    cases: list[Case] = []
    problems: list[Problem] = []
    first_seen: dict[str, Case] = {}
    for path in [p for p in files if kinds[p] == KIND]:
        file_cases, file_problems = load_file(path)
        problems += file_problems
        for case in file_cases:
            if case.id in first_seen:
                other = first_seen[case.id]
                problems.append(
                    Problem(
                        case.file,
                        case.line,
                        "id",
                        f"duplicate case id {case.id!r} (first defined at {other.file}:{other.line})",
                    )
                )
                continue
            first_seen[case.id] = case
            cases.append(case)
    if not any(kind in (KIND, "distribution_cases") for kind in kinds.values()):
        problems.append(
            Problem(
                str(root_),
                None,
                "",
                f"no case files ({CASE_FILE_GLOB} holding `cases:` or `distribution_cases:`) found",
            )
        )
    return cases, problems


def load_cases(root: Path | str | None = None) -> list[Case]:
    """Strict variant: raise CaseFileError listing every problem."""
    cases, problems = load_corpus(root)
    if problems:
        raise CaseFileError(problems)
    return cases


def corpus_hash(cases: Iterable[Case]) -> str:
    digest = hashlib.sha256()
    for h in sorted(c.hash for c in cases):
        digest.update(h.encode())
    return digest.hexdigest()[:16]


def read_document(path: Path) -> tuple[str, Any, safe_yaml.Lines | None, Problem | None]:
    """(display name, data, lines, problem) of one YAML file; data and lines are None when it cannot be read."""
    name = _display_path(path)
    try:
        data, lines = safe_yaml.load_path(path)
    except safe_yaml.YamlError as exc:
        return name, None, None, Problem(name, exc.line, exc.field, exc.message)
    return name, data, lines, None


def load_file(path: Path) -> tuple[list[Case], list[Problem]]:
    name, data, lines, problem = read_document(path)
    if problem:
        return [], [problem]
    if isinstance(data, dict) and len(data) == 1 and next(iter(data)) in OTHER_KINDS:
        return [], []
    assert lines is not None, f"{name}: a document read without a problem has its line map"

    problems = [Problem(name, lines.line_of(path_), _dotted(path_), msg) for path_, msg in _schema_errors(data)]
    if problems:
        return [], problems
    cases = []
    for index, entry in enumerate(data["cases"]):
        base = ("cases", index)
        case_problems = [
            Problem(name, lines.line_of(base + p), _dotted(base + p), msg) for p, msg in _semantic_errors(entry)
        ]
        if case_problems:
            problems += case_problems
            continue
        cases.append(_build_case(entry, name, lines.line_of(base)))
    return cases, problems


def _build_case(entry: dict, file: str, line: int | None) -> Case:
    return Case(
        id=entry["id"],
        description=entry["description"],
        tags=tuple(entry.get("tags", ())),
        p=Distribution(entry["p"]),
        q=Distribution(entry["q"]),
        expected=entry.get("expected"),
        file=file,
        line=line,
        hash=case_content_hash(entry),
        dtypes=tuple(entry["dtypes"]) if "dtypes" in entry else None,
        out_of_domain=bool(entry.get("out_of_domain", False)),
        source=entry.get("source"),
        broadcast=bool(entry.get("broadcast", False)),
        properties=tuple(entry.get("properties", ())),
    )


def case_content_hash(entry: dict) -> str:
    """Hash of everything that determines the numbers (not the prose)."""
    content = {k: v for k, v in entry.items() if k not in ("description", "tags", "source")}
    text = json.dumps(content, sort_keys=True, default=repr, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- validation


@functools.lru_cache(maxsize=1)
def _validator():
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text())
    return jsonschema.Draft202012Validator(schema)


def _schema_errors(data: Any) -> list[tuple[tuple, str]]:
    if not isinstance(data, dict):
        kind = "an empty file" if data is None else f"a {type(data).__name__}"
        return [((), f"expected a mapping with a 'cases' list, found {kind}")]
    errors = []
    for error in _validator().iter_errors(data):
        # For oneOf failures, the most specific sub-error says more than "is not valid under any".
        best = _most_specific(error)
        errors.append((tuple(best.absolute_path), _schema_message(best)))
    return sorted(set(errors), key=lambda e: tuple(map(str, e[0])))


def _most_specific(error):
    if error.validator == "oneOf" and error.context:
        # Prefer the branch that got deepest into the instance, then the one with fewest errors.
        branches: dict[int, list] = {}
        for sub in error.context:
            branches.setdefault(sub.schema_path[0], []).append(sub)
        best = max(branches.values(), key=lambda subs: (max(len(s.absolute_path) for s in subs), -len(subs)))
        return _most_specific(max(best, key=lambda s: len(s.absolute_path)))
    return error


def _schema_message(error) -> str:
    if error.validator == "additionalProperties":
        return f"unknown field(s): {error.message.split('(')[-1].rstrip(')')}"
    if error.validator == "required":
        return error.message.replace("is a required property", "is required")
    return error.message


def _semantic_errors(entry: dict) -> list[tuple[tuple, str]]:
    """What JSON Schema cannot say: generator names, ragged rows, domains, shapes."""
    errors: list[tuple[tuple, str]] = []
    shapes = {}
    for side in ("p", "q"):
        spec = entry[side]
        if "generator" in spec:
            errors += [((side,) + p, m) for p, m in _generator_errors(spec)]
            shapes[side] = tuple(spec["shape"])
            continue
        space = "probs" if "probs" in spec else "logits"
        shape, message = _tensor_shape(spec[space])
        if message:
            errors.append(((side, space), message))
            continue
        shapes[side] = shape
        values = np.asarray(spec[space], dtype=np.float64)
        if not entry.get("out_of_domain"):
            masked = (values == -np.inf) if space == "logits" else np.zeros(values.shape, bool)  # -inf logit: p = 0
            if not np.all(np.isfinite(values) | masked):
                errors.append(((side, space), "NaN or infinite entries (set out_of_domain: true if deliberate)"))
            elif space == "logits" and values.ndim and np.any(np.all(masked, axis=-1)):
                errors.append(((side, space), "a row of logits that are all -inf has no distribution"))
            elif space == "probs" and np.any(values < 0):
                errors.append(((side, space), "negative probabilities (set out_of_domain: true if deliberate)"))
            elif space == "probs" and np.any(values > 1):
                errors.append(((side, space), "probabilities above 1 (set out_of_domain: true if deliberate)"))
        if shape == ():
            errors.append(((side, space), "a scalar is not a distribution: give at least one row of classes"))
    if errors:  # a side already wrong has no shape worth comparing
        return errors
    if len(shapes) == 2 and shapes["p"] != shapes["q"]:
        if not entry.get("broadcast"):
            errors.append(
                (
                    ("q",),
                    f"shape {list(shapes['q'])} differs from p's shape {list(shapes['p'])} "
                    "(set broadcast: true to test broadcasting)",
                )
            )
        elif _broadcast_shape(shapes["p"], shapes["q"]) is None or shapes["p"][-1] != shapes["q"][-1]:
            errors.append(
                (
                    ("q",),
                    f"shape {list(shapes['q'])} does not broadcast with p's {list(shapes['p'])} "
                    "over the batch (the class axis must match)",
                )
            )
    elif entry.get("broadcast") and len(shapes) == 2:
        errors.append((("broadcast",), "p and q have the same shape: nothing is broadcast"))
    expected = entry.get("expected")
    if expected and len(shapes) == 2 and not errors:
        full = _broadcast_shape(shapes["p"], shapes["q"])
        assert full is not None, "shapes that passed the broadcast check broadcast"
        for key, want in (("kl_per_row", full[:-1]), ("elementwise", full)):
            if key in expected:
                got, message = _tensor_shape(expected[key])
                if message:
                    errors.append((("expected", key), message))
                elif got != want:
                    errors.append(
                        (("expected", key), f"shape {list(got)} does not match the inputs: expected {list(want)}")
                    )
    return errors


def _broadcast_shape(a: tuple, b: tuple) -> tuple | None:
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        return None


def _generator_errors(spec: dict) -> list[tuple[tuple, str]]:
    name = spec["generator"]
    if name not in generators.GENERATORS:
        known = ", ".join(sorted(generators.GENERATORS))
        return [(("generator",), f"unknown generator {name!r} (known: {known})")]
    errors: list[tuple[tuple, str]] = []
    allowed = generators.PARAMETERS[name]
    for param in ("alpha", "temperature", "scale", "delta"):
        if param in spec and param not in allowed:
            errors.append(((param,), f"generator {name!r} takes no parameter {param!r}"))
        elif param in spec and not math.isfinite(spec[param]):
            errors.append(((param,), f"must be a finite number, found {spec[param]!r}"))
    # JSON Schema's "integer" admits 3.0; a seed or a dimension must be written as an integer
    for where, value in [(("seed",), spec["seed"])] + [(("shape", i), d) for i, d in enumerate(spec["shape"])]:
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append((where, f"must be an integer, found {value!r}"))
    if errors:
        return errors
    if spec["seed"] >= SEED_LIMIT:
        errors.append((("seed",), f"{spec['seed']} is not a plausible seed (at most 2**63 - 1)"))
    size = math.prod(spec["shape"])
    if size > generators.MAX_ELEMENTS:
        errors.append((("shape",), f"{size:,} values exceed the limit of {generators.MAX_ELEMENTS:,}"))
    if spec["shape"][-1] == 0:
        errors.append((("shape",), "the class axis (last) must not be empty"))
    return errors


def _tensor_shape(value: Any) -> tuple[tuple[int, ...], str | None]:
    """Shape of nested lists, or a message saying where they are ragged."""
    if not isinstance(value, list):
        return (), None
    if not value:
        return (0,), None
    shapes = [_tensor_shape(v) for v in value]
    for i, (_, message) in enumerate(shapes):
        if message:
            return (), f"[{i}]{message}" if message.startswith("[") else f"[{i}]: {message}"
    first = shapes[0][0]
    for i, (shape, _) in enumerate(shapes[1:], start=1):
        if shape != first:
            return (), f"rows of unequal width: row 0 has shape {list(first)}, row {i} has {list(shape)}"
    return (len(value),) + first, None
