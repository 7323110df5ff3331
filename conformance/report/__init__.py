"""Reports from results files alone: the HTML page, merge, diff and JUnit XML.

Nothing in this package imports a framework, so a report can be built on a machine that
has none of them. `write_report` is what `klconf run` and `klconf report` call: it streams the
results files through `aggregate.Aggregator`, so memory stays bounded for millions of checks.
The commands (`klconf report | merge | diff | junit`) live in `commands.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

INDEX = "index.html"
# The page's sections in order: (anchor, navigation label); each is the partial templates/section_<anchor>.html.j2.
SECTIONS = [
    ("overview", "Overview"),
    ("conventions", "Conventions"),
    ("porting", "Porting"),
    ("matrix", "Matrix"),
    ("accuracy", "Accuracy"),
    ("failures", "Failures"),
    ("exploration", "Exploration"),
    ("run", "Run information"),
]
OPTIONAL_SECTIONS = {"exploration"}  # shown (and listed in the navigation) only when their data is present


def write_report(results: Iterable[Path | str], out_dir: Path | str, validate: str = "sample") -> Path:
    """Write `out_dir/index.html` from one or more results files, streamed; return its path."""
    from . import aggregate, model

    aggregator = aggregate.Aggregator()
    runset = model.scan(results, aggregator.add, validate)
    return write_page(aggregator.result(runset), runset, out_dir)


def write_page(data: dict, runset, out_dir: Path | str) -> Path:
    """Render the page for data from `aggregate` (and the sources it came from) into `out_dir/index.html`."""
    from . import exploration, html, svg

    explored = exploration.load(s.path for s in runset.sources)
    sections = [
        (name, label)
        for name, label in SECTIONS
        if name not in OPTIONAL_SECTIONS or (name == "exploration" and explored)
    ]
    page = html.render(
        "report.html.j2",
        title="klconf report",
        sources=[s.path for s in runset.sources],
        sections=sections,
        exploration=explored,
        chart=svg.accuracy_chart(data["accuracy"]["rows"]),
        legend=svg.legend(),
        **data,
    )
    return html.write(Path(out_dir) / INDEX, page)
