"""What changed across releases: one page over a series of runs, compared release to release.

The series is results files in release order (oldest first), usually the matrix's
reports/matrix/<family>-<version>/ folders. Each consecutive pair is compared by `diff.compare`
(the same rules as `klconf diff`), and the page shows the pairs newest first, per API: values
that moved (the size of the move against the check's tolerance), verdicts that changed,
inferred conventions whose fields changed, and checks added or removed. Every change links to
both records and to a reproduction: the record's own snippet where the run stored one, else the
install line and `klconf run` selection that reproduce it. Built from results files alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..results import Record
from .diff import Change, Diff, _comparable, _tolerance, compare, framework_versions
from .model import RunSet, load

ROWS_PER_PAIR = 500  # verdict, value and convention changes shown per pair of releases
IDS_PER_GROUP = 200  # added or removed check ids listed per API


@dataclass
class Release:
    """One run in the series: its label and the pins that reproduce it (from release.json when present)."""

    label: str
    path: str
    runset: RunSet
    requirements: list[str] = field(default_factory=list)
    framework: str = ""


def load_series(paths: Sequence[str | Path]) -> list[Release]:
    """Results files or matrix release folders, in the order given (oldest first)."""
    series = []
    for given in paths:
        path = Path(given)
        results = path / "results.jsonl" if path.is_dir() else path
        meta_path = results.parent / "release.json"
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
        runset = load([results])
        label = meta.get("label") or _label_from_versions(runset) or results.parent.name
        series.append(
            Release(label, str(results), runset, list(meta.get("requirements") or []), meta.get("framework", ""))
        )
    return series


def _label_from_versions(runset: RunSet) -> str:
    return "; ".join(f"{name} {v}" for name, v in framework_versions(runset).items())


def move(change: Change, base: Record | None, new: Record | None) -> dict | None:
    """For a value change: the largest move of an observed value, its tolerance and their ratio."""
    if change.what != "value" or base is None or new is None:
        return None
    old, now = _comparable(base.observed), _comparable(new.observed)
    if old is None or now is None or old.shape != now.shape:
        return None
    finite = np.isfinite(old) & np.isfinite(now)
    if not finite.any():
        return None
    delta = float(np.max(np.abs(now[finite] - old[finite])))
    tolerance = _tolerance(base, new)
    return {"delta": delta, "tolerance": tolerance, "ratio": delta / tolerance if tolerance else None}


def reproduction(release: Release, record: Record) -> str:
    """The record's stored snippet, or the commands that rerun this one check on this release."""
    snippet = record.extra.get("repro") if isinstance(record.extra, dict) else None
    if snippet:
        return str(snippet)
    install = f"pip install -e . {' '.join(release.requirements)}".rstrip()
    short_api = record.api.rsplit(".", 1)[-1] if record.api else ""
    keyword = " and ".join(k for k in (record.case_id, short_api) if k)
    return (
        f"{install}\nklconf run --framework {record.framework} --check {record.check} --dtype {record.dtype} "
        f"--device {record.device}" + (f" -k '{keyword}'" if keyword else "") + f"\n# check id: {record.check_id}"
    )


def record_view(anchor: str, release: Release, record: Record) -> dict:
    data = record.to_json()
    data.pop("extra", None)
    extra = {k: v for k, v in (record.extra or {}).items() if k != "repro"}
    if extra:
        data["extra"] = extra
    text = "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in data.items()) + "\n}"
    return {
        "anchor": anchor,
        "release": release.label,
        "check_id": record.check_id,
        "json": text,
        "repro": reproduction(release, record),
    }


def short_id(check_id: str, api: str) -> str:
    """A check id without its API (the group heading names it): case, options, device, dtype."""
    return check_id.replace(f"::{api}", " ", 1).replace("::", " ") if api else check_id


def pair_view(index: int, old: Release, new: Release) -> dict:
    """One pair of consecutive releases: changes per API, and the records they link to."""
    result: Diff = compare(old.runset, new.runset)
    before, after = old.runset.by_id(), new.runset.by_id()
    apis: dict[str, dict] = {}
    records: list[dict] = []
    shown = 0
    for n, change in enumerate(result.changes):
        api = change.api or "(no API)"
        group = apis.setdefault(
            api, {"api": api, "framework": change.framework, "rows": [], "added": [], "removed": []}
        )
        if change.what in ("added", "removed"):
            group[change.what].append(change.check_id)
            continue
        if shown >= ROWS_PER_PAIR:
            continue
        shown += 1
        b, a = before.get(change.check_id), after.get(change.check_id)
        links: list[dict[str, str]] = []
        row = {
            "check_id": change.check_id,
            "short": short_id(change.check_id, change.api),
            "category": change.category,
            "what": change.what,
            "base_verdict": change.base_verdict,
            "new_verdict": change.new_verdict,
            "detail": change.detail,
            "move": move(change, b, a),
            "links": links,
        }
        for side, release, record in (("old", old, b), ("new", new, a)):
            if record is not None:
                anchor = f"p{index}-c{n}-{side}"
                records.append(record_view(anchor, release, record))
                links.append({"anchor": anchor, "label": f"{release.label} record"})
        group["rows"].append(row)
    counts = result.counts
    hidden = sum(counts[c] for c in ("regression", "improvement", "changed")) - shown
    versions_old, versions_new = framework_versions(old.runset), framework_versions(new.runset)
    return {
        "id": f"pair-{index}",
        "old": old.label,
        "new": new.label,
        "counts": counts,
        "unchanged": result.unchanged,
        "hidden": max(hidden, 0),
        "apis": sorted(apis.values(), key=lambda g: g["api"]),
        "records": records,
        "versions": [
            (k, versions_old.get(k, "absent"), versions_new.get(k, "absent"))
            for k in sorted(set(versions_old) | set(versions_new))
        ],
        "incomplete": [
            f"{s.path}: {'; '.join(s.incomplete_reasons)}"
            for s in old.runset.sources + new.runset.sources
            if s.incomplete_reasons
        ],
    }


def build(series: list[Release]) -> dict:
    pairs = [pair_view(i, series[i], series[i + 1]) for i in range(len(series) - 1)]
    pairs.reverse()  # newest release first
    return {
        "releases": [
            {"label": r.label, "path": r.path, "checks": len(r.runset.records), "requirements": r.requirements}
            for r in series
        ],
        "pairs": pairs,
        "ids_per_group": IDS_PER_GROUP,
    }


def text(page: dict) -> str:
    """The same comparison as lines: one block per pair, newest first."""
    lines = []
    for pair in page["pairs"]:
        counts = ", ".join(f"{n} {c}" for c, n in pair["counts"].items())
        lines.append(f"{pair['old']} → {pair['new']}: {counts}; {pair['unchanged']} unchanged")
        for group in pair["apis"]:
            for row in group["rows"]:
                lines.append(f"  {row['category']:11s} {row['check_id']}\n      {row['detail']}")
            for what in ("added", "removed"):
                if group[what]:
                    lines.append(f"  {what:11s} {len(group[what])} check(s) of {group['api']}")
    return "\n".join(lines) + "\n"


def html(page: dict, title: str = "klconf: what changed across releases") -> str:
    from . import html as html_mod

    return html_mod.render("changes.html.j2", title=title, **page)


def write(series: list[Release], out: Path | str) -> Path:
    from . import html as html_mod

    return html_mod.write(Path(out), html(build(series)))
