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
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import generators, safe_yaml
from .case_validation import schema_errors, semantic_errors
from .safe_yaml import dotted as _dotted

DEFAULT_CASES_DIR = Path(__file__).resolve().parent.parent / "cases"
CASE_FILE_GLOB = "*.yaml"
# A YAML file under cases/ holds one kind of document, named by its single top-level key. This
# loader reads "cases" (tensor-level); the other kinds have their own loaders. A file that cannot be
# read is reported by exactly one loader: the one its kind is guessed for (see `document_kind`).
KIND = "cases"
OTHER_KINDS = ("distribution_cases", "expectations")
KIND_FOLDERS = {"distributions": "distribution_cases", "expectations": "expectations"}
_KIND_LINE = re.compile(r"^(cases|distribution_cases|expectations)\s*:", re.M)


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

    problems = [Problem(name, lines.line_of(path_), _dotted(path_), msg) for path_, msg in schema_errors(data)]
    if problems:
        return [], problems
    cases = []
    for index, entry in enumerate(data["cases"]):
        base = ("cases", index)
        case_problems = [
            Problem(name, lines.line_of(base + p), _dotted(base + p), msg) for p, msg in semantic_errors(entry)
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
