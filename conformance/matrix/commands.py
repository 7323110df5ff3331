"""`klconf matrix | changes | bisect`: registered through cli.COMMAND_MODULES.

Building the parser imports only argparse; each command imports what it needs when run.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .. import kinds

DTYPES = ("float16", "bfloat16", "float32", "float64")


def _selection_arguments(parser, keyword_default: str | None) -> None:
    parser.add_argument(
        "--check",
        action="append",
        default=[],
        choices=kinds.names(),
        help="kinds of check (default: the family's own, e.g. value, property, convention)",
    )
    parser.add_argument(
        "--dtype", action="append", default=[], choices=DTYPES, help="dtypes (default: float32 and float64); repeatable"
    )
    parser.add_argument(
        "-k",
        dest="keyword",
        default=None,
        help=f"pytest -k expression over check ids (default: {keyword_default}; '' for every check)",
    )
    parser.add_argument("-n", "--workers", default="1", help="pytest-xdist workers per release run (default 1)")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="time limit per framework call")
    parser.add_argument(
        "--envs", default=".klconf-envs", help="where release environments are kept (default: .klconf-envs/)"
    )
    parser.add_argument("--python", help="the Python the environments are made from (default: this one)")
    parser.add_argument("--out", default="reports/matrix", help="output folder (default: reports/matrix/)")


def add_commands(sub) -> None:
    from .run import DEFAULT_KEYWORD

    matrix = sub.add_parser("matrix", help="run the suite on each framework release, one environment per release")
    matrix.add_argument(
        "releases",
        nargs="*",
        metavar="RELEASE",
        help="FAMILY (its default releases) or FAMILY-VERSION, e.g. jax jax-0.4.25 torch-2.15.0 "
        "(default: every family, cheapest first)",
    )
    matrix.add_argument("--list", action="store_true", help="list the release table and exit")
    matrix.add_argument(
        "--summary",
        action="store_true",
        help="print what the matrix recorded so far (OUT/summary.json), one line per run, and exit",
    )
    matrix.add_argument(
        "--cold", action="store_true", help="run against an empty oracle cache (measures the oracle's own cost)"
    )
    _selection_arguments(matrix, f"the family's APIs and {DEFAULT_KEYWORD!r}")
    matrix.set_defaults(func=cmd_matrix)

    changes = sub.add_parser("changes", help="what changed across releases: consecutive diffs on one page")
    changes.add_argument(
        "results", nargs="+", metavar="RESULTS", help="results files or matrix release folders, oldest release first"
    )
    changes.add_argument("--format", choices=("html", "text"), default="html")
    changes.add_argument("-o", "--out", metavar="FILE", help="write here (default: standard output)")
    changes.set_defaults(func=cmd_changes)

    bisect = sub.add_parser("bisect", help="find the first release where selected checks change behaviour")
    bisect.add_argument("family", help="release family, e.g. jax")
    bisect.add_argument("first", help="the older release, e.g. 0.4.25")
    bisect.add_argument("last", help="the newer release, e.g. 0.10.2")
    bisect.add_argument(
        "--matrix-only",
        action="store_true",
        help="search only the matrix's default releases, not every known release in the range",
    )
    _selection_arguments(bisect, "none: required")
    bisect.set_defaults(func=cmd_bisect, out="reports/bisect")


def _selection(args):
    from .run import Selection

    return Selection(
        checks=tuple(args.check),
        dtypes=tuple(args.dtype) or ("float32", "float64"),
        keyword=args.keyword,
        workers=str(args.workers),
        timeout=args.timeout,
    )


def _installer(args):
    from .envs import UvInstaller

    return UvInstaller(checkout(), Path(args.envs), python=args.python)


def checkout() -> Path:
    """The klconf source tree the environments install editable: this package's, else the working folder."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def cmd_matrix(args) -> int:
    from ..cli import UsageError
    from . import releases as table
    from .run import line, run_release

    try:
        chosen = table.select(args.releases)
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None
    if args.summary:
        from .run import Outcome, load_summary

        for entry in load_summary(Path(args.out) / "summary.json"):
            print(line(Outcome(**entry)))
        return 0
    selection = _selection(args)
    if args.list:
        for r in chosen:
            keyword = selection.arguments(r)[selection.arguments(r).index("-k") + 1] if r.focus else ""
            print(
                f"{r.label:22s} klconf --framework {r.framework:10s} {' '.join(r.requirements)}"
                + (f"  (-k '{keyword}')" if keyword else "")
                + (f"  ({r.note})" if r.note else "")
            )
        return 0
    installer, out = _installer(args), Path(args.out)
    outcomes = []
    for release in chosen:
        print(f"klconf matrix: {release.label}: installing {' '.join(release.requirements)}", flush=True)
        outcome = run_release(release, installer, selection, out, cold=args.cold)
        outcomes.append(outcome)
        print(line(outcome), flush=True)
        if not outcome.installed:
            print("  " + outcome.install.get("reason", "").replace("\n", "\n  "), flush=True)
    _write_change_pages(out, chosen)
    print(
        f"klconf matrix: {sum(o.installed for o in outcomes)} of {len(outcomes)} release(s) installed; "
        f"summary in {out / 'summary.json'}"
    )
    return 0 if all(o.installed for o in outcomes) else 1


def _write_change_pages(out: Path, chosen) -> None:
    """One changes page per family over every release of it that has results, in release order."""
    from ..report import changes
    from .releases import version_key

    for family in dict.fromkeys(r.family for r in chosen):
        folders = sorted(
            (p.parent for p in out.glob(f"{family}-*/results.jsonl")),
            key=lambda p: version_key(p.name[len(family) + 1 :]),
        )
        folders = [f for f in folders if f.name[len(family) + 1 :][:1].isdigit()]
        if len(folders) >= 2:
            page = changes.write(changes.load_series(folders), out / f"changes-{family}.html")
            print(f"klconf matrix: what changed across {len(folders)} {family} releases: {page}")


def cmd_changes(args) -> int:
    from ..cli import UsageError
    from ..report import changes

    try:
        series = changes.load_series(args.results)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    page = changes.build(series)
    output = changes.html(page) if args.format == "html" else changes.text(page)
    if args.out:
        from ..report.html import write

        print(f"klconf: changes across {len(series)} release(s) written to {write(Path(args.out), output)}")
    else:
        sys.stdout.write(output)
    return 0


def cmd_bisect(args) -> int:
    from ..cli import UsageError
    from ..results import read
    from .bisect import Probe, describe, difference, search
    from .releases import FAMILIES
    from .run import line, run_release

    if args.family not in FAMILIES:
        raise UsageError(f"unknown release family {args.family!r} (known: {', '.join(FAMILIES)})")
    if not args.keyword:
        raise UsageError("name the checks to follow with -k (a pytest -k expression over check ids)")
    try:
        candidates = FAMILIES[args.family].between(args.first, args.last, every=not args.matrix_only)
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None
    by_label = {r.label: r for r in candidates}
    installer, selection, out = _installer(args), _selection(args), Path(args.out)

    def evaluate(label: str) -> Probe:
        outcome = run_release(by_label[label], installer, selection, out)
        print(f"  tried {line(outcome)}", flush=True)
        if not outcome.installed or not Path(outcome.results).exists():
            return Probe(label, None, outcome.install.get("reason", "") or "no results written")
        return Probe(label, {r.check_id: r for r in read(outcome.results, validate="none").records})

    print(
        f"klconf bisect: {len(candidates)} {args.family} releases from {args.first} to {args.last}; "
        f"a binary search needs at most {_budget(len(candidates))} of them",
        flush=True,
    )
    result = search(list(by_label), evaluate)
    print(
        f"klconf bisect: installed and ran {result.installs} release(s): "
        + ", ".join(result.probes[i].label for i in sorted(result.probes))
    )
    if result.after is None:
        print(f"klconf bisect: {result.note}")
        return 1 if "could not" in result.note else 0
    assert result.before is not None, "a release that differs is found only after one that behaves as the first"
    old, new = result.probes[result.before], result.probes[result.after]
    print(
        f"klconf bisect: first change in {new.label} (last release like {args.first}: {old.label}); "
        f"{len(result.changed)} check(s) changed" + (f"; {result.note}" if result.note else "")
    )
    for check_id in result.changed:
        before, after = old.signatures([check_id])[check_id], new.signatures([check_id])[check_id]
        print(f"\n{check_id}\n  {old.label} → {new.label}: {difference(before, after)}")
        for probe in (old, new):
            record = (probe.records or {}).get(check_id)
            print(f"  {probe.label}: {describe(probe.signatures([check_id])[check_id]).split('; inferred')[0]}")
            if record is not None:
                print(f"    observed {record.observed!r}\n    expected {record.expected!r}")
                if record.message:
                    print(f"    {record.message}")
        for probe in (new, old):  # the snippet is stored with failing records
            record = (probe.records or {}).get(check_id)
            if record is not None and record.extra.get("repro"):
                print(f"  reproduction ({probe.label}):\n    " + str(record.extra["repro"]).replace("\n", "\n    "))
                break
    return 0


def _budget(n: int) -> int:
    from .bisect import Bisection

    return Bisection.budget(n)
