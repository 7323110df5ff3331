"""`klconf site`: the published static site, one run more each time, with its history.

The site folder holds
  history.json          one entry per run, oldest first (small: totals only, never records)
  index.html            the runs, trends per framework and per API over runs, links
  runs/<id>/index.html  each run's report
  runs/<id>/diff.html   what changed against the run before it (`klconf diff`)
  runs/<id>/results.jsonl  the results of the latest runs (the next run's diff reads them)
Every page is self-contained (inline CSS and SVG, no script, nothing fetched) and every string
that came from a results file is escaped by Jinja's autoescaping or `markupsafe.escape`.
Adding a run whose id is already in the history replaces that entry, so a re-published run
does not count twice.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup, escape

from ..results import FAILING, VERDICTS
from . import INDEX
from .model import RunSet

HISTORY = "history.json"
RUNS = "runs"
RESULTS = "results.jsonl"
DIFF = "diff.html"
HISTORY_FORMAT = 1


class SiteError(Exception):
    """The site folder cannot be used as it is (e.g. its history.json is not klconf's)."""


@dataclass
class Published:
    index: Path
    entry: dict
    diff_counts: dict | None


def run_entry(runset: RunSet, run_id: str) -> dict:
    """What the history keeps of one run: when, with what, and its totals per framework, API and verdict."""
    from .diff import framework_versions

    headers = [h for s in runset.sources for h in s.shard_headers] or [{}]
    from .plans import check_plans

    origin = [runset.sources[i].path for i in runset.origin]
    planned = check_plans(runset.sources, runset.records, origin)
    per_framework: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    per_api: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for record in runset.records:
        per_framework[record.framework][record.verdict] += 1
        per_api[record.api][record.verdict] += 1
    return {
        "run_id": run_id,
        "date": min((str(h.get("started", "")) for h in headers), default=""),
        "klconf": sorted({str(h.get("klconf", "")) for h in headers} - {""}),
        "corpus_hash": sorted({str(h.get("corpus_hash", "")) for h in headers} - {""}),
        "frameworks": framework_versions(runset),
        "checks": len(runset.records),
        "complete": runset.complete and not planned.missing,
        "missing": len(planned.missing),  # planned checks without a record, by the recorded plans
        "totals": {fw: dict(v) for fw, v in sorted(per_framework.items())},
        "apis": {api: dict(v) for api, v in sorted(per_api.items())},
    }


def safe_id(text: str) -> str:
    """A run id fit for a folder name and a URL: letters, digits, '-', '_' (else a digest of it)."""
    if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", text):
        return text
    import hashlib

    return "run-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def read_history(site: Path) -> list[dict]:
    path = site / HISTORY
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SiteError(f"{path}: not readable as JSON: {exc}") from None
    runs = data.get("runs") if isinstance(data, dict) else None
    if not isinstance(runs, list) or not all(isinstance(r, dict) and isinstance(r.get("run_id"), str) for r in runs):
        raise SiteError(f'{path}: not a klconf history (expected {{"runs": [{{"run_id": ...}}, ...]}})')
    for number, entry in enumerate(runs, start=1):
        problem = _entry_problem(entry)
        if problem:
            raise SiteError(f"{path}: run {number} ({entry['run_id']!r}): {problem}")
    return runs


def _entry_problem(entry: dict) -> str:
    """What makes a history entry unusable for the index page, or ''."""
    for key in ("totals", "apis"):
        table = entry.get(key, {})
        if not isinstance(table, dict) or not all(
            isinstance(counts, dict) and all(type(n) is int for n in counts.values()) for counts in table.values()
        ):
            return f"{key} is not a table of verdict counts"
    if not isinstance(entry.get("frameworks", {}), dict) or not isinstance(entry.get("checks", 0), int):
        return "frameworks or checks malformed"
    for key in ("report", "diff", "date"):
        if not isinstance(entry.get(key, ""), str):
            return f"{key} is not text"
    if not isinstance(entry.get("diff_counts", {}), dict):
        return "diff_counts is not a table"
    return ""


def publish(
    runset: RunSet,
    site: Path | str,
    results_paths: list[Path],
    keep_results: int = 2,
    base: RunSet | None = None,
    title: str = "klconf conformance",
) -> Published:
    """Add one run to the site: its report, its diff against the previous run (or `base`), the history and index."""
    from . import aggregate, diff, html, write_page

    site = Path(site)
    history = read_history(site)
    header = runset.sources[0].header if len(runset.sources) == 1 else {}
    run_id = safe_id(str(header.get("run_id") or "") or _combined_id(runset))
    history = [e for e in history if e.get("run_id") != run_id]
    folder = site / RUNS / run_id
    folder.mkdir(parents=True, exist_ok=True)
    write_page(aggregate.build(runset), runset, folder)
    entry = run_entry(runset, run_id)
    entry["report"] = f"{RUNS}/{run_id}/{INDEX}"
    previous = history[-1] if history else None
    if base is None and previous is not None:
        kept = site / RUNS / safe_id(previous["run_id"]) / RESULTS
        if kept.is_file():
            from .model import load

            base = load([kept])
    diff_counts = None
    if base is not None:
        compared = diff.compare(base, runset)
        html.write(folder / DIFF, diff.html(compared))
        diff_counts = {**compared.counts, "unchanged": compared.unchanged}
        entry.update(
            diff=f"{RUNS}/{run_id}/{DIFF}",
            diff_counts=diff_counts,
            diff_base=previous["run_id"] if previous is not None else "given base",
        )
    _keep_results(runset, results_paths, folder)
    history.append(entry)
    _prune_results(site, history, keep_results)
    (site / HISTORY).write_text(
        json.dumps({"format": HISTORY_FORMAT, "runs": history}, indent=1) + "\n", encoding="utf-8"
    )
    index = html.write(site / INDEX, render_index(history, title))
    return Published(index, entry, diff_counts)


def _combined_id(runset: RunSet) -> str:
    return "+".join(str(s.header.get("run_id", "")) for s in runset.sources)


def _keep_results(runset: RunSet, paths: list[Path], folder: Path) -> None:
    """The run's results, for the next run's diff: one file as it is, several merged into one."""
    if len(paths) == 1:
        shutil.copyfile(paths[0], folder / RESULTS)
        return
    from . import merge

    merge.write(merge.merge(runset), folder / RESULTS)


def _prune_results(site: Path, history: list[dict], keep: int) -> None:
    """Results files are the bulk of a site: keep those of the last `keep` runs (reports and diffs stay)."""
    for entry in history[:-keep] if keep > 0 else history:
        (site / RUNS / safe_id(entry["run_id"]) / RESULTS).unlink(missing_ok=True)


# --------------------------------------------------------------------------- the index page


def render_index(history: list[dict], title: str) -> str:
    from . import html

    frameworks = sorted({fw for e in history for fw in e.get("totals", {})})
    apis = sorted({api for e in history for api in e.get("apis", {})})
    labels = [_short_date(e.get("date", "")) or e["run_id"] for e in history]
    rates = {fw: [pass_rate(e.get("totals", {}).get(fw)) for e in history] for fw in frameworks}
    api_rows = []
    for api in apis:
        series = [failing(e.get("apis", {}).get(api)) for e in history]
        latest = history[-1].get("apis", {}).get(api, {})
        api_rows.append(
            {
                "api": api,
                "spark": sparkline(series),
                "latest": _verdict_text(latest),
                "failing": series[-1] if series[-1] is not None else 0,
            }
        )
    runs = [
        {**e, "label": label, "total_text": {fw: _verdict_text(v) for fw, v in e.get("totals", {}).items()}}
        for e, label in zip(history, labels)
    ]
    return html.render(
        "site.html.j2",
        title=title,
        runs=list(reversed(runs)),
        frameworks=frameworks,
        chart=trend_chart(rates, labels),
        api_rows=api_rows,
        verdicts=VERDICTS,
    )


def pass_rate(counts: dict | None) -> float | None:
    """Passed (and expected failures) over judged checks; None when nothing was judged."""
    if not counts:
        return None
    judged = sum(counts.get(v, 0) for v in ("pass", "xfail") + FAILING)
    return (counts.get("pass", 0) + counts.get("xfail", 0)) / judged if judged else None


def failing(counts: dict | None) -> int | None:
    return None if counts is None else sum(counts.get(v, 0) for v in FAILING)


def _verdict_text(counts: dict) -> str:
    order = [v for v in VERDICTS if counts.get(v)] + sorted(set(counts) - set(VERDICTS))
    return ", ".join(f"{counts[v]:,} {v}" for v in order)


def _short_date(text: str) -> str:
    return text[:16].replace("T", " ")


COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


def trend_chart(
    series: dict[str, list[float | None]], labels: list[str], width: int = 720, height: int = 240
) -> Markup:
    """Pass rate per framework over runs: a line per framework, y from the lowest rate (to the 10 % below) to 100 %."""
    values = [v for vs in series.values() for v in vs if v is not None]
    if not values or not labels:
        return Markup('<p class="empty">No judged checks yet.</p>')
    low = min(0.9, int(min(values) * 10) / 10)  # a decile below the lowest value, at most 90 %
    left, right, top, bottom = 56, 150, 12, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(labels)

    def x(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - low) / (1 - low))

    parts = [
        f'<svg class="trend" role="img" aria-label="pass rate per framework over runs" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for k in range(6):
        v = low + (1 - low) * k / 5
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v * 100:.0f}%</text>'
        )
    step = max(1, n // 8)
    for i in range(0, n, step):
        parts.append(f'<text x="{x(i):.1f}" y="{height - bottom + 16}" text-anchor="middle">{escape(labels[i])}</text>')
    for (name, vs), colour in zip(sorted(series.items()), _cycle(COLOURS)):
        points = [(x(i), y(v)) for i, v in enumerate(vs) if v is not None]
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        if len(points) > 1:
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for (px, py), v in zip(points, [v for v in vs if v is not None]):
            parts.append(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}">'
                f"<title>{escape(name)}: {v * 100:.2f}%</title></circle>"
            )
        last_y = points[-1][1] if points else top
        parts.append(f'<text x="{left + plot_w + 8}" y="{last_y + 4:.1f}" fill="{colour}">{escape(name)}</text>')
    parts.append(f'<text x="{left}" y="{height - 6}" class="axis">runs, oldest to newest</text></svg>')
    return Markup("".join(parts))


def sparkline(values: list[int | None], width: int = 120, height: int = 22) -> Markup:
    """Failing checks of one API over runs, on a scale from 0 to its own maximum."""
    known = [(i, v) for i, v in enumerate(values) if v is not None]
    if not known:
        return Markup("")
    top = max(v for _, v in known) or 1
    n = len(values)

    def point(i: int, v: int) -> str:
        return f"{2 + (width - 4) * (i / (n - 1) if n > 1 else 0.5):.1f},{height - 2 - (height - 4) * v / top:.1f}"

    points = " ".join(point(i, v) for i, v in known)
    title = escape(" → ".join("–" if v is None else str(v) for v in values))
    return Markup(
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>failing per run: {title}</title>'
        f'<polyline points="{points}" fill="none" stroke="#d62728" stroke-width="1.5"/></svg>'
    )


def _cycle(items):
    while True:
        yield from items
