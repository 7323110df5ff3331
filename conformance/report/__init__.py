"""Reports from results files alone: the HTML page, merge, diff and JUnit XML.

Nothing in this package imports a framework, so a report can be built on a machine that
has none of them. `write_report` is what `klconf run` calls when a run ends; the commands
(`klconf report | merge | diff | junit`) live in `commands.py`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

INDEX = "index.html"


def write_report(results: Iterable[Path | str], out_dir: Path | str) -> Path:
    """Write `out_dir/index.html` from one or more results files; return its path."""
    from . import model

    return write_runset(model.load(results), out_dir)


def write_runset(runset, out_dir: Path | str) -> Path:
    """Write `out_dir/index.html` for results already read (a model.RunSet)."""
    from . import aggregate, exploration, html, svg

    data = aggregate.build(runset)
    page = html.render("report.html.j2", title="klconf report", sources=[s.path for s in runset.sources],
                       chart=svg.accuracy_chart(data["accuracy"]["rows"]), legend=svg.legend(),
                       exploration=exploration.load(s.path for s in runset.sources), **data)
    return html.write(Path(out_dir) / INDEX, page)
