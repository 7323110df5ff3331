"""Stored KL values of distribution cases: `klconf cases check` verifies them, `klconf cases fill` writes them.

A stored value must be the float64 nearest the closed form evaluated at the case's float64
parameters (within one ulp), and +inf exactly where the closed form is infinite; its provenance says
how it was certified (the same formula in arb, certify.py) and the bound. Filling
edits the file's text in place, as conformance/stored.py does for tensor cases, so
comments and layout survive.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from yaml.nodes import SequenceNode

from .. import safe_yaml
from ..cases import Problem
from ..oracle import Expectation
from ..stored import _block, _content_end, _mapping, _replace, _same
from . import certify, closed_forms
from .cases import KIND, DistributionCase, load_corpus


def oracle_values(case: DistributionCase) -> np.ndarray:
    """KL(P||Q) per batch element at the case's own float64 parameters."""
    values, _, _ = closed_forms.evaluate(case.p.family, case.p.params, case.q.family, case.q.params, case.batch)
    return values


def expected_block(case: DistributionCase) -> dict:
    return {"kl": oracle_values(case).tolist(), "provenance": provenance(case)}


def provenance(case: DistributionCase) -> str:
    """How the stored values were certified: the closed form in arb, to a quarter of a float64 ulp (so the
    stored value, mpmath's float64, is the exact one faithfully rounded), and the largest bound."""
    p, q = case.p.params, case.q.params
    values, magnitude, counts = closed_forms.evaluate(case.p.family, p, case.q.family, q, case.batch)
    first = Expectation(value=values, magnitude=magnitude, terms=int(counts.max(initial=1)))
    exp = certify.certified(first, case.p.family, p, case.q.family, q, case.batch)
    if exp.bound is None:
        return exp.provenance
    finite = np.isfinite(values)
    # a zero has no quarter ulp to reach (arb's balls about an exact 0 never shrink to it): its first bound
    exp = exp.certified_to(np.where(finite & (values != 0), np.spacing(np.abs(values)) / 4, np.inf))
    bound = float(np.max(np.where(finite, exp.bound, 0.0), initial=0.0))
    return f"certified: |exact - stored| <= {bound:.1e} + float64 rounding; {exp.provenance}"


def verify(case: DistributionCase) -> list[Problem]:
    if not case.expected:
        return [
            Problem(case.file, case.line, f"{case.id}.expected", "no stored expected values (run `klconf cases fill`)")
        ]
    stored = np.asarray(case.expected["kl"], np.float64)
    truth = oracle_values(case)
    with np.errstate(invalid="ignore"):
        close = (stored == truth) | (np.abs(stored - truth) <= np.spacing(np.abs(truth)))
    if close.all():
        return []
    i = tuple(int(x) for x in np.argwhere(~close)[0])
    return [
        Problem(
            case.file,
            case.line,
            f"{case.id}.expected.kl{list(i) if i else ''}",
            f"stored {stored[i]!r} but the closed form gives {truth[i]!r} "
            f"({int((~close).sum())} of {close.size} values differ)",
        )
    ]


def check(root: Path | str | None = None) -> tuple[str, list[Problem]]:
    """Load and verify every distribution case: (one summary line, all problems)."""
    cases, problems = load_corpus(root)
    confirmed = values = 0
    for case in cases:
        case_problems = verify(case)
        problems += case_problems
        confirmed += not case_problems
        values += int(np.size(case.expected["kl"])) if case.expected else 0
    return (
        f"{len(cases)} distribution cases loaded, {confirmed} confirmed "
        f"({values} stored KL values recomputed from closed forms)"
    ), problems


def fill(root: Path | str | None = None, update: bool = False) -> tuple[list[str], list[Problem]]:
    """Add missing `expected` blocks (and, with update, replace disagreeing ones); one line per change."""
    cases, problems = load_corpus(root)
    by_file: dict[str, dict[str, DistributionCase]] = {}
    for case in cases:
        by_file.setdefault(case.file, {})[case.id] = case
    changes = []
    for file, by_id in sorted(by_file.items()):
        changes += [f"{file}: {c}" for c in fill_file(Path(file), by_id, update)]
    return changes, problems


def fill_file(path: Path, cases_by_id: dict[str, DistributionCase], update: bool = False) -> list[str]:
    text = path.read_text(encoding="utf-8")
    root = safe_yaml.compose(text, pure=True)  # pure: marks index characters of text
    edits, changes = [], []
    for node in _mapping(root).get(KIND, SequenceNode("", [])).value:
        entry = _mapping(node)
        case = cases_by_id.get(entry["id"].value) if "id" in entry else None
        if case is None:
            continue
        block = expected_block(case)
        if "expected" in entry:
            stored = case.expected or {}
            if update and (not _same(stored.get("kl"), block["kl"]) or stored.get("provenance") != block["provenance"]):
                edits.append(_replace(text, entry["expected"], block))
                changes.append(f"{case.id}: expected values replaced")
        else:
            column = node.value[0][0].start_mark.column
            at = _content_end(node).index
            edits.append((at, at, f"\n{' ' * column}expected:\n{' ' * (column + 2)}{_block(block, column + 2)}"))
            changes.append(f"{case.id}: expected values added")
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    if edits:
        path.write_text(text, encoding="utf-8")
    return changes
