"""Finding the first release where a check's behaviour changed, by binary search over releases.

A check's behaviour in one release is its signature: the verdict, the class of each observed
value (finite, nan, +inf, -inf) and, for convention checks, the inferred convention. Small
moves of a finite value inside tolerance are not a change here (`klconf diff` reports those).

The search assumes the selected behaviour changes once in the range: it evaluates both ends,
then halves the interval whose ends differ, so n releases cost 2 + ceil(log2(n - 1)) installs.
A change that is undone before the last release is invisible to it; the first and last
signatures are printed, so a reader sees what was compared. A release that does not install is
set aside with its reason and the search takes its nearest neighbour inside the interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..results import Record

Signature = tuple
ABSENT: Signature = ("absent",)


def value_classes(observed) -> tuple[str, ...]:
    """The class of each observed value, in order; a summarized array by its sample and worst value."""
    if isinstance(observed, dict):
        observed = list(observed.get("sample") or []) + ([observed["at_worst"]] if "at_worst" in observed else [])
    flat: list = []

    def walk(v) -> None:
        if isinstance(v, list):
            for item in v:
                walk(item)
        else:
            flat.append(v)

    walk(observed)
    return tuple(_class(v) for v in flat)


def _class(value) -> str:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return "none" if value is None else "other"
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "+inf" if x > 0 else "-inf"
    return "finite"


def signature(record: Record | None) -> Signature:
    if record is None:
        return ABSENT
    inferred = record.extra.get("inferred") if record.check == "convention" else None
    frozen = tuple(sorted((str(k), repr(v)) for k, v in inferred.items())) if isinstance(inferred, dict) else ()
    return (record.verdict, value_classes(record.observed), frozen)


def describe(sig: Signature) -> str:
    if sig == ABSENT:
        return "absent"
    verdict, classes, inferred = sig
    counts: dict[str, int] = {}
    for c in classes:
        counts[c] = counts.get(c, 0) + 1
    text = f"{verdict}; values " + (", ".join(f"{n} {c}" for c, n in counts.items()) or "none")
    return text + (f"; inferred {dict(inferred)}" if inferred else "")


def difference(old: Signature, new: Signature) -> str:
    """What differs between two signatures, field by field (for printing a change in one line)."""
    if ABSENT in (old, new):
        return f"{describe(old)} → {describe(new)}"
    parts = []
    if old[0] != new[0]:
        parts.append(f"verdict {old[0]} → {new[0]}")
    if old[1] != new[1]:
        moved = [f"[{i}] {a} → {b}" for i, (a, b) in enumerate(zip(old[1], new[1])) if a != b]
        parts.append(
            "value class " + (", ".join(moved[:8]) if moved and len(old[1]) == len(new[1]) else f"{old[1]} → {new[1]}")
        )
    before, after = dict(old[2]), dict(new[2])
    for name in sorted(set(before) | set(after)):
        if before.get(name) != after.get(name):
            parts.append(f"inferred {name} {before.get(name, 'absent')} → {after.get(name, 'absent')}")
    return "; ".join(parts) or "no difference"


@dataclass
class Probe:
    """One release evaluated: its records by check id, or why it could not be."""

    label: str
    records: dict[str, Record] | None
    reason: str = ""

    def signatures(self, check_ids: Sequence[str]) -> dict[str, Signature]:
        return {c: signature((self.records or {}).get(c)) for c in check_ids}


@dataclass
class Bisection:
    labels: list[str]
    probes: dict[int, Probe] = field(default_factory=dict)  # by release index, in the order evaluated
    before: int | None = None  # last release that behaves as the first
    after: int | None = None  # first release that does not
    changed: list[str] = field(default_factory=list)  # check ids whose signature differs between the two
    note: str = ""

    @property
    def installs(self) -> int:
        return len(self.probes)

    @staticmethod
    def budget(n: int) -> int:
        """Installs a binary search needs for n releases: both ends, then halving n - 1 gaps."""
        return n if n <= 2 else 2 + math.ceil(math.log2(n - 1))


def search(
    labels: Sequence[str], evaluate: Callable[[str], Probe], check_ids: Sequence[str] | None = None
) -> Bisection:
    """Binary search for the first release whose signatures differ from the first release's.

    evaluate(label) installs and runs one release; check_ids fixes which checks are compared
    (default: every check either end recorded).
    """
    result = Bisection(list(labels))
    if len(labels) < 2:
        result.note = "need at least two releases"
        return result

    def probe(index: int) -> Probe:
        if index not in result.probes:
            result.probes[index] = evaluate(labels[index])
        return result.probes[index]

    first, last = probe(0), probe(len(labels) - 1)
    for end in (first, last):
        if end.records is None:
            result.note = f"{end.label} could not be evaluated: {end.reason}"
            return result
    assert first.records is not None and last.records is not None, "both ends were evaluated"
    ids = list(check_ids) if check_ids else sorted(set(first.records) | set(last.records))
    if not ids:
        result.note = "no check selected in either release"
        return result
    base = first.signatures(ids)
    if last.signatures(ids) == base:
        result.note = (
            f"no change between {labels[0]} and {labels[-1]} in {len(ids)} check(s) "
            "(a change undone within the range would not show)"
        )
        return result
    lo, hi = 0, len(labels) - 1
    while hi - lo > 1:
        inside = sorted(range(lo + 1, hi), key=lambda i: (abs(i - (lo + hi) / 2), i))
        mid = next((i for i in inside if probe(i).records is not None), None)
        if mid is None:
            result.note = "releases between these two could not be evaluated: " + "; ".join(
                f"{result.probes[i].label}: {result.probes[i].reason}" for i in inside
            )
            break
        if probe(mid).signatures(ids) == base:
            lo = mid
        else:
            hi = mid
    result.before, result.after = lo, hi
    old, new = result.probes[lo].signatures(ids), result.probes[hi].signatures(ids)
    result.changed = [c for c in ids if old[c] != new[c]]
    return result
