"""`klconf report | merge | diff | site | junit`: registered through cli.COMMAND_MODULES.

Building the parser imports only argparse; each command imports what it needs when run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_commands(sub) -> None:
    report = sub.add_parser("report", help="write the static HTML report (and optionally JUnit XML) from results files")
    report.add_argument("results", nargs="+", metavar="RESULTS", help="results files (JSON lines)")
    report.add_argument("--out", default="reports", help="output directory for index.html (default: reports/)")
    report.add_argument("--junit", metavar="FILE", help="also write JUnit XML here")
    report.add_argument(
        "--validate",
        choices=("sample", "all", "none"),
        default="sample",
        help="schema validation of the results (default: every header and a sample of records)",
    )
    report.set_defaults(func=cmd_report)

    merge = sub.add_parser("merge", help="merge results from several machines or runs into one file")
    merge.add_argument("results", nargs="+", metavar="RESULTS")
    merge.add_argument("-o", "--out", required=True, metavar="OUT", help="merged results file to write")
    merge.add_argument(
        "--keep",
        choices=("first", "last"),
        help="for a check id found in several inputs, keep this occurrence (default: refuse to merge)",
    )
    merge.add_argument(
        "--force",
        action="store_true",
        help="write even when run information conflicts (different case corpus or schema)",
    )
    merge.add_argument("--cases", help="case corpus to measure completeness against (default: the bundled cases/)")
    merge.add_argument(
        "--api",
        action="append",
        default=[],
        metavar="MODULE:OBJECT",
        help="plug-in APIs the shards ran, so their checks count towards completeness; repeatable",
    )
    merge.add_argument(
        "--no-completeness",
        action="store_true",
        help="do not judge completeness (neither against the recorded plans nor the case corpus)",
    )
    merge.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="exit 0 even when a planned check or shard ran in no input, or an input is incomplete",
    )
    merge.add_argument("--require-complete", action="store_true", help=argparse.SUPPRESS)  # the default now
    merge.set_defaults(func=cmd_merge)

    diff = sub.add_parser("diff", help="compare two runs: regressions, improvements, added and removed checks")
    diff.add_argument("base", metavar="BASE", help="results of the reference run")
    diff.add_argument("new", metavar="NEW", help="results of the run to judge")
    diff.add_argument("--format", choices=("text", "json", "html"), default="text")
    diff.add_argument("--out", metavar="FILE", help="write here instead of standard output")
    diff.set_defaults(func=cmd_diff)

    site = sub.add_parser(
        "site",
        help="add a run to a static site: its report, its diff against the previous run, "
        "and the history of runs with trends",
    )
    site.add_argument("results", nargs="+", metavar="RESULTS", help="the run's results (usually one merged file)")
    site.add_argument("--site", required=True, metavar="DIR", help="the site folder (created, or grown by one run)")
    site.add_argument("--base", metavar="RESULTS", help="diff against these results, not the site's previous run")
    site.add_argument(
        "--keep-results",
        type=int,
        default=2,
        metavar="N",
        help="keep the results files of the last N runs in the site (default 2; reports always stay)",
    )
    site.add_argument("--title", default="klconf conformance", help="the index page's title")
    site.set_defaults(func=cmd_site)

    junit = sub.add_parser("junit", help="write JUnit XML for CI systems from results files")
    junit.add_argument("results", nargs="+", metavar="RESULTS")
    junit.add_argument("-o", "--out", required=True, metavar="FILE")
    junit.set_defaults(func=cmd_junit)


def _load(paths, validate: str = "sample"):
    from ..cli import UsageError
    from .model import load

    try:
        return load(paths, validate=validate)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None


def _say_problems(runset) -> None:
    for problem in runset.problems():
        print(f"klconf: {problem}", file=sys.stderr)
    for source in runset.sources:
        if source.incomplete_reasons:
            print(f"klconf: incomplete run {source.path}: {'; '.join(source.incomplete_reasons)}", file=sys.stderr)


def cmd_report(args) -> int:
    from ..cli import UsageError
    from . import aggregate, junit, model, write_page

    aggregator = aggregate.Aggregator()
    try:
        runset = model.scan(args.results, aggregator.add, args.validate)  # streamed: any size fits in memory
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    _say_problems(runset)
    index = write_page(aggregator.result(runset), runset, args.out)
    print(f"klconf: report written to {index}")
    if args.junit:
        print(f"klconf: JUnit XML written to {junit.write(_load(args.results, args.validate), args.junit)}")
    return 0


def cmd_merge(args) -> int:
    """Merge strictly: nothing is written on duplicates or conflicts unless told how to resolve them; the exit
    status is non-zero when the merged file is incomplete (a planned check or shard ran nowhere) unless allowed."""
    from ..cli import UsageError
    from . import merge

    runset = _load(args.results)
    _say_problems(runset)
    result = merge.merge(runset, keep=args.keep or "first")
    result.judge_plans = not args.no_completeness
    if not args.no_completeness and not (result.plans and result.plans.plans):  # no input recorded its plan
        extra = []
        for spec in args.api:
            from ..frameworks import load_plugin

            try:
                extra += load_plugin(spec)
            except Exception as exc:
                raise UsageError(f"--api {spec}: {type(exc).__name__}: {exc}") from None
        result.completeness = merge.completeness(result.records, args.cases, tuple(extra))
        shards = merge.header(result)["corpus_hash"]
        if shards and result.completeness.corpus_hash != shards:
            result.completeness.corpus_note = (
                f"the inputs ran case corpus {shards}, the corpus loaded here is "
                f"{result.completeness.corpus_hash}: missing checks may be expected"
            )
    refuse = []
    if result.duplicates and not args.keep:
        refuse.append("duplicated check ids (choose --keep first or --keep last)")
    if result.conflicts and not args.force:
        refuse.append("conflicting run information (--force to merge anyway)")
    wrote = None if refuse else merge.write(result, args.out)
    for line in merge.summary_lines(result, wrote, args.keep or "first"):
        print(line)
    if refuse:
        print(f"klconf: nothing written: {'; '.join(refuse)}", file=sys.stderr)
        return 1
    if result.incomplete and not args.allow_incomplete:
        print(
            f"klconf: the merged results are incomplete: {'; '.join(result.incomplete)} (--allow-incomplete to accept)",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_diff(args) -> int:
    from . import diff

    base, new = _load([args.base]), _load([args.new])
    result = diff.compare(base, new)
    output = {"text": diff.text, "json": diff.as_json, "html": diff.html}[args.format](result)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(output, encoding="utf-8")
        counts = result.counts
        print(
            f"klconf: diff written to {out}: {counts['regression']} regression(s), {counts['improvement']} "
            f"improvement(s), {counts['added']} added, {counts['removed']} removed"
        )
    else:
        sys.stdout.write(output)
    return 1 if result.regressed else 0


def cmd_site(args) -> int:
    from ..cli import UsageError
    from . import site

    runset = _load(args.results)
    _say_problems(runset)
    base = _load([args.base]) if args.base else None
    try:
        published = site.publish(
            runset,
            args.site,
            [Path(p) for p in args.results],
            keep_results=args.keep_results,
            base=base,
            title=args.title,
        )
    except site.SiteError as exc:
        raise UsageError(str(exc)) from None
    counts = published.diff_counts
    changes = (
        f"; against the previous run: {counts['regression']} regression(s), {counts['improvement']} "
        f"improvement(s), {counts['added']} added, {counts['removed']} removed"
        if counts
        else "; first run"
    )
    print(f"klconf: site written to {published.index} (run {published.entry['run_id']}{changes})")
    return 0


def cmd_junit(args) -> int:
    from . import junit

    runset = _load(args.results)
    _say_problems(runset)
    print(f"klconf: JUnit XML written to {junit.write(runset, args.out)}")
    return 0
