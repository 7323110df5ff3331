"""The accuracy chart: inline SVG drawn in Python, so it shows without JavaScript.

One row per API, device and dtype; three panels on log axes: error in ULPs, relative
error, and headroom (error / tolerance, where 1 is the tolerance). Each row draws the
range from the smallest to the largest error as a thin line, the median to the 95th
percentile as a bar, and the largest as a dot. Each axis spans every value it plots, whole
decades from the smallest positive one to the largest (an exact 0 sits on the left edge, which
the panel's title says); each panel carries its decades as data-lo and data-hi and each glyph its
values, so a test can hold the axes to the data. Every string is escaped.
"""

from __future__ import annotations

import math

from markupsafe import Markup, escape

ROW = 16
LABEL = 360
RIGHT = 56  # room for the 'tolerance' label
PANEL = 210
GAP = 44
TOP = 44
BOTTOM = 26
DTYPE_COLOURS = {"float16": "#d9822b", "bfloat16": "#b3589a", "float32": "#2b7bb9", "float64": "#2f8f5b"}
PANELS = (
    ("ulp", "error in ULPs", None),
    ("rel", "relative error", None),
    ("headroom", "headroom = error / tolerance", 1.0),
)


def accuracy_chart(rows: list[dict]) -> Markup:
    if not rows:
        return Markup("")
    ranges = [_decades([r[key] for r in rows if r[key]], must_include=mark) for key, _, mark in PANELS]
    width = LABEL + len(PANELS) * (PANEL + GAP) + RIGHT
    height = TOP + ROW * len(rows) + BOTTOM
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="accuracy per API and dtype">'
    ]
    for i in range(len(rows)):
        if i % 2:
            out.append(f'<rect x="0" y="{TOP + i * ROW}" width="{width}" height="{ROW}" class="band"/>')
    for p, ((key, title, mark), (lo, hi)) in enumerate(zip(PANELS, ranges)):
        x0 = LABEL + p * (PANEL + GAP)
        zeros = any(r[key] and r[key]["min"] <= 0 for r in rows)
        out.append(f'<g class="panel" data-key="{key}" data-lo="{lo}" data-hi="{hi}">')
        out.append(f'<text x="{x0}" y="14" class="ptitle">{escape(title)}</text>')
        if zeros:
            out.append(f'<text x="{x0}" y="28" class="tick">0 on the left edge</text>')
        for decade in range(lo, hi + 1):
            x = x0 + PANEL * (decade - lo) / max(hi - lo, 1)
            out.append(f'<line x1="{x:.1f}" y1="{TOP - 4}" x2="{x:.1f}" y2="{height - BOTTOM}" class="grid"/>')
            if (decade - lo) % _label_step(hi - lo) == 0:
                out.append(f'<text x="{x:.1f}" y="{height - BOTTOM + 14}" class="tick">1e{decade}</text>')
        if mark is not None:
            x = x0 + PANEL * (math.log10(mark) - lo) / max(hi - lo, 1)
            out.append(f'<line x1="{x:.1f}" y1="{TOP - 8}" x2="{x:.1f}" y2="{height - BOTTOM}" class="limit"/>')
            out.append(f'<text x="{x + 3:.1f}" y="{TOP - 8}" class="tick limit-label">tolerance</text>')
        for i, row in enumerate(rows):
            stats = row[key]
            if stats:
                out.append(
                    _glyph(
                        stats,
                        x0,
                        TOP + i * ROW + ROW / 2,
                        lo,
                        hi,
                        DTYPE_COLOURS.get(row["dtype"], "#555"),
                        f"{row['label']}: {title}",
                    )
                )
        out.append("</g>")
    for i, row in enumerate(rows):
        y = TOP + i * ROW + ROW / 2 + 4
        label = row["label"] if len(row["label"]) <= 56 else row["label"][:55] + "…"
        cls = "rlabel failing" if row["fail"] else "rlabel"
        tip = f"{row['label']}: {row['n']} checks with errors measured, {row['fail']} failing"
        out.append(
            f'<text x="{LABEL - 8}" y="{y:.1f}" class="{cls}"><title>{escape(tip)}</title>{escape(label)}</text>'
        )
    out.append("</svg>")
    return Markup("".join(out))


def _glyph(stats: dict, x0: float, y: float, lo: int, hi: int, colour: str, what: str) -> str:
    def x(v: float) -> float:
        v = math.log10(v) if v > 0 else lo
        return x0 + PANEL * (min(max(v, lo), hi) - lo) / max(hi - lo, 1)

    tip = (
        f"{what}: min {stats['min']:.3g}, median {stats['p50']:.3g}, 95th percentile {stats['p95']:.3g}, "
        f"max {stats['max']:.3g} over {stats['n']} checks"
    )
    bar_start, bar_end = x(stats["p50"]), max(x(stats["p95"]), x(stats["p50"]) + 2)
    return (
        f'<g class="glyph" data-min="{stats["min"]!r}" data-max="{stats["max"]!r}"><title>{escape(tip)}</title>'
        f'<line x1="{x(stats["min"]):.1f}" y1="{y:.1f}" x2="{x(stats["max"]):.1f}" y2="{y:.1f}" '
        f'stroke="{colour}" class="range"/>'
        f'<rect x="{bar_start:.1f}" y="{y - 4:.1f}" width="{bar_end - bar_start:.1f}" height="8" fill="{colour}" '
        f'class="iqr"/><circle cx="{x(stats["max"]):.1f}" cy="{y:.1f}" r="3" fill="{colour}"/></g>'
    )


def _decades(stats: list[dict], must_include: float | None = None) -> tuple[int, int]:
    """Whole decades spanning every positive value plotted (zeros sit at the left edge). The span is never
    cut: a value far from the rest widens the axis rather than being pinned to its edge, and values that
    mean nothing on this axis (ULP errors of an exact 0) are left out by the aggregation, not here."""
    values = [v for s in stats for v in (s["min"], s["max"]) if v > 0]
    if must_include is not None:
        values.append(must_include)
    if not values:
        return -1, 1
    lo, hi = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
    if hi == lo:
        hi += 1
    return lo, hi


def _label_step(span: int) -> int:
    """Decades between tick labels, so that labels stay about 36 px apart."""
    return max(1, math.ceil(36 * span / PANEL))


def legend() -> Markup:
    items = "".join(
        f'<span class="key"><i style="background:{c}"></i>{escape(d)}</span>' for d, c in DTYPE_COLOURS.items()
    )
    return Markup(items)
