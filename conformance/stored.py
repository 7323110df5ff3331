"""The oracle values stored in case files: `klconf cases check` verifies them, `klconf cases fill` writes them.

Filling edits text, because PyYAML cannot round-trip comments: it finds each case's nodes
with their source positions and replaces (or inserts) only the `expected` block and the
`sha256` of generated inputs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from yaml.error import Mark
from yaml.nodes import MappingNode, SequenceNode

from . import generators, oracle, safe_yaml
from .cases import Case, Problem, load_corpus

ELEMENTWISE_LIMIT = 24  # store per-element terms for cases up to this many elements


def expected_block(case: Case) -> dict:
    """What a case file stores as `expected`: the oracle's values from the case's float64 values,
    certified to a quarter of a float64 ulp (so the stored value is the exact one, faithfully rounded)."""
    p, q = case.p, case.q
    pv, qv = np.broadcast_arrays(p.values, q.values)
    block: dict = {}
    certified = []
    reductions = [("kl_per_row", "per_row")]
    if 0 < pv.size <= ELEMENTWISE_LIMIT:  # (an empty batch cannot state its class width in a list)
        reductions.append(("elementwise", "none"))
    for key, reduction in reductions:
        exp = _certified(pv, p.space, qv, q.space, reduction)
        block[key] = exp.value.tolist()
        certified.append(exp)
    block["provenance"] = provenance(certified)
    return block


def _certified(pv: np.ndarray, p_space: str, qv: np.ndarray, q_space: str, reduction: str) -> oracle.Expectation:
    spec = oracle.Spec(p_space=oracle.space_name(p_space), q_space=oracle.space_name(q_space), reduction=reduction)
    rough = oracle.expected(pv, qv, spec)
    with np.errstate(invalid="ignore"):
        need = np.where(np.isfinite(rough.value), 0.25 * np.spacing(np.abs(rough.value)), np.inf)
    return rough.certified_to(need)


def provenance(certified: list[oracle.Expectation]) -> str:
    """How stored values were certified: the largest bound before rounding, and the arithmetic."""
    bound = max((float(np.max(e.bound, initial=0.0)) for e in certified if e.bound is not None), default=0.0)
    how = max((e.provenance for e in certified), key=len, default="")
    return f"certified: |exact - stored| <= {bound:.1e} + float64 rounding; {how}"


def fill_file(path: Path, cases_by_id: dict[str, Case], update: bool = False) -> list[str]:
    """Rewrite `path` in place; return one line per change made."""
    text = path.read_text(encoding="utf-8")
    root = safe_yaml.compose(text, pure=True)  # pure: marks index characters of text
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement) character spans
    changes = []
    for case_node in _mapping(root).get("cases", SequenceNode("", [])).value:
        entry = _mapping(case_node)
        case_id = entry["id"].value if "id" in entry else None
        case = cases_by_id.get(case_id) if case_id is not None else None
        if case is None:
            continue
        for side in ("p", "q"):
            dist = case.p if side == "p" else case.q
            node = entry.get(side)
            if dist.generated and node is not None:
                digest = generators.digest(dist.values)
                if dist.spec.get("sha256") != digest and (update or "sha256" not in dist.spec):
                    spec = {k: v for k, v in dist.spec.items() if k != "sha256"} | {"sha256": digest}
                    edits.append(_replace(text, node, spec))
                    changes.append(f"{case_id}: {side}.sha256 = {digest}")
        block = expected_block(case)
        if "expected" in entry:
            if update and _differs(case.expected, block):
                edits.append(_replace(text, entry["expected"], block))
                changes.append(f"{case_id}: expected values replaced")
        else:
            key_column = case_node.value[0][0].start_mark.column
            at = _content_end(case_node).index
            rendered = _block(block, key_column + 2)
            edits.append((at, at, f"\n{' ' * key_column}expected:\n{' ' * (key_column + 2)}{rendered}"))
            changes.append(f"{case_id}: expected values added")
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    if edits:
        path.write_text(text, encoding="utf-8")
    return changes


def fill(root: Path | str | None = None, update: bool = False) -> tuple[list[str], list]:
    cases, problems = load_corpus(root)
    by_file: dict[str, dict[str, Case]] = {}
    for case in cases:
        by_file.setdefault(case.file, {})[case.id] = case
    changes = []
    for file, by_id in sorted(by_file.items()):
        changes += [f"{file}: {c}" for c in fill_file(Path(file), by_id, update)]
    return changes, problems


def verify(case: Case) -> list[Problem]:
    """Recompute what the case stores; a stored value must be the float64 nearest the oracle's (1 ulp)."""
    problems = []
    for side, dist in (("p", case.p), ("q", case.q)):
        if dist.generated and "sha256" in dist.spec:
            digest = generators.digest(dist.values)
            if digest != dist.spec["sha256"]:
                problems.append(
                    Problem(
                        case.file,
                        case.line,
                        f"{case.id}.{side}.sha256",
                        f"generator output changed: stored {dist.spec['sha256']}, now {digest}",
                    )
                )
    if not case.expected:
        problems.append(
            Problem(case.file, case.line, f"{case.id}.expected", "no stored expected values (run `klconf cases fill`)")
        )
        return problems
    p, q = case.p, case.q
    pv, qv = np.broadcast_arrays(p.values, q.values)
    oracles = {
        "kl_per_row": lambda: _certified(pv, p.space, qv, q.space, "per_row").value,
        "elementwise": lambda: _certified(pv, p.space, qv, q.space, "none").value,
    }
    for key, compute in oracles.items():
        if key not in case.expected:
            continue
        stored = np.asarray(case.expected[key], np.float64)
        truth = compute()
        bad = ~_close(stored, truth)
        if bad.any():
            i = tuple(int(x) for x in np.argwhere(bad)[0])
            problems.append(
                Problem(
                    case.file,
                    case.line,
                    f"{case.id}.expected.{key}{list(i) if i else ''}",
                    f"stored {stored[i]!r} but the oracle gives {truth[i]!r} "
                    f"({int(bad.sum())} of {bad.size} values differ)",
                )
            )
    return problems


def _close(stored: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Equal to within one float64 ulp of the oracle (stored values are the oracle's, rounded once)."""
    if stored.shape != truth.shape:
        return np.zeros(truth.shape, bool)
    with np.errstate(invalid="ignore"):
        near = np.abs(stored - truth) <= np.spacing(np.abs(truth))
    return near | (stored == truth) | (np.isnan(stored) & np.isnan(truth))


def _differs(stored: dict | None, block: dict) -> bool:
    if not stored:
        return True
    for key in ("kl_per_row", "elementwise"):
        if key in block and not _same(stored.get(key), block[key]):
            return True
    return stored.get("provenance") != block["provenance"]


def _same(a, b) -> bool:
    if a is None:
        return False
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    same = ((a == b) & (np.signbit(a) == np.signbit(b))) | (np.isnan(a) & np.isnan(b))  # -0.0 is not 0.0 here
    return a.shape == b.shape and bool(np.all(same))


def _mapping(node) -> dict:
    if not isinstance(node, MappingNode):
        return {}
    return {k.value: v for k, v in node.value}


def _content_end(node) -> Mark:
    """Where a node's own text ends (a block node's end_mark runs on to the next token)."""
    if isinstance(node, MappingNode) and not node.flow_style and node.value:
        return _content_end(node.value[-1][1])
    if isinstance(node, SequenceNode) and not node.flow_style and node.value:
        return _content_end(node.value[-1])
    return node.end_mark


def _replace(text: str, node, value: dict) -> tuple[int, int, str]:
    start, end = node.start_mark.index, _content_end(node).index
    if getattr(node, "flow_style", False):
        return start, end, _flow(value)
    return start, end, _block(value, node.start_mark.column)


def _block(value: dict, indent: int) -> str:
    lines = [f"{k}: {_flow(v)}" for k, v in value.items()]
    return ("\n" + " " * indent).join(lines)


def _flow(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if any(c in text for c in ",[]{}:#'\"") or text != text.strip() or not text:
        return json.dumps(text)
    return text
