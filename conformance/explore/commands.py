"""`klconf explore`: search for failing inputs within a budget, and save each finding as a case.

    klconf explore --budget 10m [--examples N] [--seed N] [--framework NAME ...] [--api MODULE:OBJECT ...]
                   [--only-api] [--dtype ...] [--device ...] [--check value|gradient|distribution|cross-framework]
                   [--out reports/] [--save-to cases/explored] [--expectations FILE|none] [--no-save]

Prints one line per target and round, then the findings; writes out/explore.json (the HTML report shows
it when it lies next to the results). Exits 1 when something was found, 0 otherwise. Hypothesis and
the frameworks are imported only when the command runs.
"""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")


def add_commands(sub) -> None:
    cmd = sub.add_parser("explore", help="search for inputs that fail a check, and save each as a case")
    cmd.add_argument(
        "--budget",
        default=None,
        metavar="TIME",
        help="wall-clock budget, e.g. 10m, 90s, 1h (default: 5m unless --examples is given)",
    )
    cmd.add_argument(
        "--examples",
        type=int,
        default=None,
        metavar="N",
        help="instead of a time budget: N examples per target, one round, every failure shrunk fully",
    )
    cmd.add_argument(
        "--seed", type=int, default=0, help="seed of the search (default 0); saved cases are tagged with it"
    )
    cmd.add_argument(
        "--framework",
        action="append",
        default=[],
        metavar="NAME",
        help="only this framework (see `klconf apis` for their names); repeatable",
    )
    cmd.add_argument(
        "--api",
        action="append",
        default=[],
        metavar="MODULE:OBJECT",
        help="also explore a third-party implementation (an Api entry); repeatable",
    )
    cmd.add_argument("--only-api", action="store_true", help="explore only the --api entries")
    cmd.add_argument(
        "--check",
        action="append",
        default=[],
        choices=("value", "gradient", "distribution", "cross-framework"),
        help="only these kinds of check (default: all four); repeatable",
    )
    cmd.add_argument("--device", action="append", default=[], choices=("cpu", "cuda"), help="default: cpu")
    cmd.add_argument("--dtype", action="append", default=[], choices=("float16", "bfloat16", "float32", "float64"))
    cmd.add_argument("--out", default="reports", help="where explore.json goes (default: reports/)")
    cmd.add_argument(
        "--save-to", default=None, metavar="DIR", help="case folder for findings (default: cases/explored)"
    )
    cmd.add_argument(
        "--expectations",
        default=None,
        metavar="FILE",
        help="manifest for draft entries (default: cases/expectations/explored.yaml; 'none': no drafts)",
    )
    cmd.add_argument("--no-save", action="store_true", help="report findings, write no case files")
    cmd.add_argument(
        "--timeout", type=float, default=60.0, metavar="SECONDS", help="time limit for one framework call (default 60)"
    )
    cmd.add_argument("--quiet", "-q", action="store_true", help="no line per target")
    cmd.set_defaults(func=cmd_explore)


def parse_budget(text: str) -> float:
    """'10m' -> 600.0, '90s' or '90' -> 90.0, '1.5h' -> 5400.0."""
    from ..cli import UsageError

    match = _DURATION.match(text or "")
    if not match or float(match.group(1)) <= 0:
        raise UsageError(f"--budget expects a positive duration such as 10m, 90s or 1h, got {text!r}")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def cmd_explore(args) -> int:
    from ..cli import UsageError

    try:
        import hypothesis  # noqa: F401
    except ImportError:
        raise UsageError("klconf explore needs Hypothesis: pip install hypothesis") from None
    from .. import frameworks, isolation
    from ..distributions import libraries
    from . import save
    from .plan import plan
    from .search import Budget, Search

    FRAMEWORKS = frameworks.FRAMEWORKS
    unknown = [f for f in args.framework if f not in FRAMEWORKS]
    if unknown:
        raise UsageError(f"unknown framework(s): {', '.join(unknown)} (known: {', '.join(FRAMEWORKS)})")
    if args.examples is not None and args.examples < 1:
        raise UsageError("--examples expects a positive number")
    if args.examples is not None and args.budget is not None:
        raise UsageError("give --budget or --examples, not both")
    budget = Budget(examples=args.examples) if args.examples else Budget(seconds=parse_budget(args.budget or "5m"))
    names = args.framework or list(FRAMEWORKS)
    apis = [] if args.only_api else frameworks.builtin_apis(names)
    for spec in args.api:
        try:
            apis += frameworks.load_plugin(spec)
        except Exception as exc:
            raise UsageError(f"--api {spec}: {type(exc).__name__}: {exc}") from None
    kinds = args.check or ["value", "gradient", "distribution", "cross-framework"]
    libs = [] if args.only_api else libraries.by_framework(names)
    targets = plan(apis, libs, kinds, args.dtype, args.device or ["cpu"])
    if not targets:
        raise UsageError("nothing to explore: no installed API or library matches the selection")
    isolation.configure(args.timeout, None, hard=False)
    warnings.filterwarnings("ignore", category=RuntimeWarning)  # NumPy on extreme inputs: the records say more
    _warm_up(targets)
    say = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    say(f"klconf explore: {len(targets)} targets, budget {budget.describe()}, seed {args.seed}")
    search = Search(targets, budget, args.seed, progress=say).run()
    out = Path(args.out)
    summary = save.summarize(search, out)  # first, so that a problem while saving loses no finding
    if not args.no_save:
        cases_dir = Path(args.save_to) if args.save_to else save.EXPLORED_DIR
        manifest = None if args.expectations == "none" else Path(args.expectations or save.EXPECTATIONS_FILE)
        summary = save.save(search, cases_dir, manifest, out)
    _print(summary, out)
    return 1 if summary["findings"] else 0


def _warm_up(targets) -> None:
    """Import each framework before the clock starts, so that no target's share is spent importing."""
    from ..frameworks import Unavailable, binding

    for framework in sorted(
        {t.framework.split("/")[0] for t in targets} | {t.framework.split("/")[-1] for t in targets}
    ):
        try:
            binding(framework).handle()
        except (Unavailable, KeyError):
            pass


def _print(summary: dict, out: Path) -> None:
    print(
        f"klconf explore: {summary['examples']} examples over {len(summary['targets'])} targets in "
        f"{summary['seconds']:g} s ({summary['rounds']} round(s)); {len(summary['findings'])} finding(s)"
    )
    for finding in summary["findings"]:
        state = "saved" if finding.get("saved") else finding.get("note", "not saved")
        print(f"  {finding['case_id']}: {finding['mechanism']} [{finding['dtype']}; {state}]")
    for path in summary["files"]:
        print(f"  wrote {path}")
    print(f"klconf explore: summary written to {out / 'explore.json'}")
