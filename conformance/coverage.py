"""What a run exercised: per framework and API, the options, dtypes, devices, shape classes, edge
categories and kinds of check that produced a result (skips and unsupported checks excluded)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

EXERCISED = ("pass", "fail", "error", "timeout", "crash", "xfail")
FIELDS = ("checks", "options", "dtypes", "devices", "shape_classes", "edge_categories")
EDGE_TAGS_EXCLUDED = {"small", "batch", "edge"}  # descriptive tags that are not edge categories


def shape_class(shape: list | None) -> str:
    if not shape:
        return "distribution" if shape is None else "scalar"
    if shape[0] == 0:
        return "empty"
    return f"{len(shape)}d" + ("-large-vocab" if shape[-1] >= 32768 else "")


class Coverage:
    def __init__(self):
        self._data: dict = defaultdict(lambda: defaultdict(lambda: {f: set() for f in FIELDS}))

    def add(self, event: dict) -> None:
        if event.get("type") != "check" or event.get("verdict") not in EXERCISED:
            return
        entry = self._data[event.get("framework", "")][event.get("api", "")]
        options = {k: v for k, v in (event.get("options") or {}).items() if k not in ("wrt", "property")}
        entry["checks"].add(event.get("check", "value"))
        entry["options"].add(",".join(f"{k}={v}" for k, v in options.items()) or "-")
        entry["dtypes"].add(event.get("dtype", ""))
        entry["devices"].add(event.get("device", ""))
        entry["shape_classes"].add(shape_class(event.get("shape")))
        entry["edge_categories"].update(t for t in event.get("tags") or () if t not in EDGE_TAGS_EXCLUDED)

    def to_json(self) -> dict:
        return {
            fw: {api: {f: sorted(v) for f, v in fields.items()} for api, fields in sorted(apis.items())}
            for fw, apis in sorted(self._data.items())
        }


def summarize(events: Iterable[dict]) -> dict:
    coverage = Coverage()
    for event in events:
        coverage.add(event)
    return coverage.to_json()


def render(summary: dict) -> str:
    lines = []
    for framework, apis in summary.items():
        lines.append(f"{framework}")
        for api, fields in apis.items():
            lines.append(f"  {api}")
            lines.append(
                f"    checks {', '.join(fields['checks'])}; {len(fields['options'])} option sets; "
                f"dtypes {', '.join(fields['dtypes'])}; devices {', '.join(fields['devices'])}"
            )
            lines.append(f"    shapes {', '.join(fields['shape_classes'])}")
            if fields["edge_categories"]:
                lines.append(f"    edges  {', '.join(fields['edge_categories'])}")
    return "\n".join(lines)


def render_brief(summary: dict) -> str:
    """One line per framework, for the end of `klconf run`."""
    lines = []
    for framework, apis in summary.items():
        union = {f: set().union(*(fields[f] for fields in apis.values())) for f in FIELDS}
        options = sum(len(fields["options"]) for fields in apis.values())
        lines.append(
            f"{framework}: {len(apis)} APIs, {options} option sets; checks {'/'.join(sorted(union['checks']))}; "
            f"dtypes {'/'.join(sorted(union['dtypes']))}; devices {'/'.join(sorted(union['devices']))}; "
            f"{len(union['shape_classes'])} shape classes; {len(union['edge_categories'])} edge categories"
        )
    return "\n".join(lines)
