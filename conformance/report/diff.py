"""Comparing two runs check by check.

A regression is a check that stopped passing (pass, xfail, skip or unsupported became fail,
error, timeout or crash), a value that moved by more than the check's tolerance although
neither run failed it, or an inferred convention that changed. An improvement is a failing
check that passes. Checks present in one run only are added or removed; any other change of
verdict (a pass that became a skip, a fail that became a crash) is listed as changed.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..results import FAILING, Record, number
from .aggregate import error_figures, fmt
from .model import RunSet

CATEGORIES = ("regression", "improvement", "changed", "added", "removed")
NOT_FAILING_PASSES = ("pass", "xfail")


@dataclass
class Change:
    check_id: str
    category: str
    what: str  # "verdict", "value", "convention", "added", "removed"
    base_verdict: str | None
    new_verdict: str | None
    detail: str
    api: str = ""
    framework: str = ""


@dataclass
class Diff:
    base: RunSet
    new: RunSet
    changes: list[Change] = field(default_factory=list)
    unchanged: int = 0

    def of(self, category: str) -> list[Change]:
        return [c for c in self.changes if c.category == category]

    @property
    def counts(self) -> dict[str, int]:
        return {c: len(self.of(c)) for c in CATEGORIES}

    @property
    def regressed(self) -> bool:
        return any(c.category == "regression" for c in self.changes)


def compare(base: RunSet, new: RunSet) -> Diff:
    result = Diff(base, new)
    before, after = base.by_id(), new.by_id()
    for check_id, b in before.items():
        n = after.get(check_id)
        if n is None:
            result.changes.append(
                Change(
                    check_id,
                    "removed",
                    "removed",
                    b.verdict,
                    None,
                    f"only in the base run ({b.verdict})",
                    b.api,
                    b.framework,
                )
            )
            continue
        change = _compare_one(b, n)
        if change is None:
            result.unchanged += 1
        else:
            result.changes.append(change)
    for check_id, n in after.items():
        if check_id not in before:
            result.changes.append(
                Change(
                    check_id,
                    "added",
                    "added",
                    None,
                    n.verdict,
                    f"only in the new run ({n.verdict})" + (f": {n.message}" if n.message else ""),
                    n.api,
                    n.framework,
                )
            )
    return result


def _compare_one(b: Record, n: Record) -> Change | None:
    def change(category, what, detail):
        return Change(b.check_id, category, what, b.verdict, n.verdict, detail, n.api, n.framework)

    was_failing, is_failing = b.verdict in FAILING, n.verdict in FAILING
    if not was_failing and is_failing:
        reason = n.message or n.reason
        if n.check == "convention" and convention_change(b, n):
            reason = f"inferred convention changed: {convention_change(b, n)}"
        detail = f"{b.verdict} → {n.verdict}" + (f" ({n.kind})" if n.kind else "") + f": {reason}"
        figures = error_figures(n)
        return change("regression", "verdict", detail + (f" [{figures}]" if figures else ""))
    if was_failing and n.verdict in NOT_FAILING_PASSES:
        return change(
            "improvement", "verdict", f"{b.verdict} → {n.verdict}" + (f" (was: {b.message})" if b.message else "")
        )
    if b.verdict != n.verdict:
        reason = n.message or n.reason
        if b.check == "convention" and convention_change(b, n):
            reason = f"inferred convention changed: {convention_change(b, n)}"
        return change("changed", "verdict", f"{b.verdict} → {n.verdict}" + (f": {reason}" if reason else ""))
    if b.check == "convention" or n.check == "convention":
        moved = convention_change(b, n)
        if moved:
            return change("regression", "convention", f"inferred convention changed: {moved}")
        return None
    if not was_failing:
        moved = value_moved(b, n)
        if moved:
            return change("regression", "value", moved)
    return None


def convention_change(b: Record, n: Record) -> str:
    before, after = b.extra.get("inferred") or {}, n.extra.get("inferred") or {}
    if not isinstance(before, dict) or not isinstance(after, dict):
        return "" if before == after else f"{before!r} → {after!r}"
    fields = sorted(set(before) | set(after))
    moved = [f"{f} {fmt(before.get(f))} → {fmt(after.get(f))}" for f in fields if before.get(f) != after.get(f)]
    return "; ".join(moved)


def value_moved(b: Record, n: Record) -> str:
    """Why the observed value moved beyond tolerance between the runs, or "" when it did not."""
    old, new = _comparable(b.observed), _comparable(n.observed)
    if old is None or new is None:
        return ""
    if old.shape != new.shape:
        return f"observed shape {list(old.shape)} → {list(new.shape)}"
    old_special, new_special = ~np.isfinite(old), ~np.isfinite(new)
    same_special = (np.isnan(old) & np.isnan(new)) | (old == new)
    mismatch = (old_special != new_special) | (old_special & new_special & ~same_special)
    if mismatch.any():
        index = int(np.argmax(mismatch))
        return f"observed value {old.ravel()[index]!r} → {new.ravel()[index]!r} (non-finite values changed)"
    finite = ~old_special
    if not finite.any():
        return ""
    delta = np.abs(new[finite] - old[finite])
    worst = int(np.argmax(delta))
    tolerance = _tolerance(b, n)
    biggest = float(delta[worst])
    if tolerance is None:
        if biggest == 0:
            return ""
        moved = f"{old[finite][worst]!r} → {new[finite][worst]!r}"
        return f"observed value moved by {biggest:.3g} ({moved}; no tolerance recorded)"
    if biggest <= tolerance:
        return ""
    return (
        f"observed value moved by {biggest:.3g} = {biggest / tolerance:.3g} × tolerance {tolerance:.3g} "
        f"({old[finite][worst]!r} → {new[finite][worst]!r}), both runs within their own tolerance"
    )


def _tolerance(b: Record, n: Record) -> float | None:
    values = []
    for r in (n, b):
        try:
            t = number(r.tolerance)
        except (TypeError, ValueError):
            t = None
        if t is not None and math.isfinite(t):
            values.append(t)
    return values[0] if values else None


def _comparable(values: Any) -> np.ndarray | None:
    """Observed values as a float array: whole arrays as they are, summaries as their sample."""
    if values is None:
        return None
    if isinstance(values, dict):
        values = values.get("sample")
        if values is None:
            return None
    try:
        return np.asarray(_floats(values), dtype=np.float64)
    except (TypeError, ValueError):
        return None


def _floats(values: Any):
    if isinstance(values, list):
        return [_floats(v) for v in values]
    return number(values)


# --------------------------------------------------------------------------- output


def run_label(runset: RunSet) -> str:
    parts = []
    for s in runset.sources:
        h = s.header
        parts.append(
            f"{s.path} (run {h.get('run_id', '?')}, {h.get('started', '?')}, {len(s.results.records):,} checks"
            + (", incomplete" if s.incomplete_reasons else "")
            + ")"
        )
    return "; ".join(parts)


def framework_versions(runset: RunSet) -> dict[str, str]:
    out: dict[str, set] = {}
    for _, ev in runset.framework_events():
        versions = ev.get("versions") or {}
        out.setdefault(ev.get("name", "?"), set()).add(", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    return {k: " / ".join(sorted(v)) for k, v in sorted(out.items())}


def text(d: Diff, limit: int = 200) -> str:
    counts = d.counts
    lines = [f"base: {run_label(d.base)}", f"new:  {run_label(d.new)}"]
    before, after = framework_versions(d.base), framework_versions(d.new)
    for name in sorted(set(before) | set(after)):
        if before.get(name) != after.get(name):
            lines.append(f"  {name}: {before.get(name, 'absent')} → {after.get(name, 'absent')}")
    lines.append(
        ", ".join(
            f"{counts[c]} {c if counts[c] == 1 or c in ('changed', 'added', 'removed') else c + 's'}"
            for c in CATEGORIES
        )
        + f"; {d.unchanged} unchanged"
    )
    for category in CATEGORIES:
        items = d.of(category)
        if not items:
            continue
        lines += [
            "",
            f"{category.upper()}S ({len(items)})"
            if category in ("regression", "improvement")
            else f"{category.upper()} ({len(items)})",
        ]
        for c in items[:limit]:
            lines.append(f"  {c.check_id}")
            lines.append(f"      {c.detail}")
        if len(items) > limit:
            lines.append(f"  ... and {len(items) - limit} more (use --format json for all)")
    lines.append("")
    lines.append("regressions found" if d.regressed else "no regressions")
    return "\n".join(lines) + "\n"


def as_json(d: Diff) -> str:
    data = {
        "base": [s.path for s in d.base.sources],
        "new": [s.path for s in d.new.sources],
        "base_complete": d.base.complete,
        "new_complete": d.new.complete,
        "framework_versions": {"base": framework_versions(d.base), "new": framework_versions(d.new)},
        "counts": {**d.counts, "unchanged": d.unchanged},
        "regressed": d.regressed,
        **{category + "s": [asdict(c) for c in d.of(category)] for category in CATEGORIES},
    }
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def html(d: Diff) -> str:
    from . import html as html_mod

    before, after = framework_versions(d.base), framework_versions(d.new)
    versions = [
        (name, before.get(name, "absent"), after.get(name, "absent")) for name in sorted(set(before) | set(after))
    ]
    sections = [(category, d.of(category)) for category in CATEGORIES]
    return html_mod.render(
        "diff.html.j2",
        title="klconf diff",
        base=run_label(d.base),
        new=run_label(d.new),
        counts=d.counts,
        unchanged=d.unchanged,
        regressed=d.regressed,
        sections=sections,
        versions=versions,
        limit=5000,
        incomplete=[
            f"{s.path}: {'; '.join(s.incomplete_reasons)}"
            for s in d.base.sources + d.new.sources
            if s.incomplete_reasons
        ],
    )
