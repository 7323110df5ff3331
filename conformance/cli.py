"""The `klconf` command line. Each command is a small function over the library; heavy
modules (frameworks, reports) are imported inside the command that needs them."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import os
import sys
from pathlib import Path

from . import __version__, kinds
from .results import ResultsUnwritable

DEFAULT_OUT = Path("reports")

# Areas that bring their own commands: each module has add_commands(subparsers), where each
# command sets `func`. Imported when the parser is built, so they must import lazily themselves.
COMMAND_MODULES: tuple[str, ...] = (
    "conformance.case_commands",
    "conformance.report.commands",
    "conformance.discovery_commands",
    "conformance.porting.commands",
    "conformance.explore.commands",
    "conformance.matrix.commands",
)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("klconf: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except UsageError as exc:
        print(f"klconf: error: {exc}", file=sys.stderr)
        return 2
    except ResultsUnwritable as exc:  # a results file a command writes itself (merge) took no more lines
        print(f"klconf: {exc}", file=sys.stderr)
        return 3


class UsageError(Exception):
    """A problem with what the user asked for: printed as one line, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="klconf", description="Cross-framework conformance suite for KL-divergence APIs."
    )
    parser.add_argument("--version", action="version", version=f"klconf {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND")

    run = sub.add_parser("run", help="run the suite and write results (and the report)")
    _add_selection_options(run)
    # One worker per CPU: one per CPU keeps the CPUs busy already, and a worker more adds work of its own (it
    # imports every framework and lowers its own JAX programs). Measured on 2 cores, warm, the whole corpus:
    # 2 workers 239 s (465 CPU-seconds, the CPUs 97 % busy); 3 workers 315 s (620 CPU-seconds).
    run.add_argument(
        "-n",
        "--workers",
        default="auto",
        help="pytest-xdist worker processes (a number, 'auto' = one per CPU, or 0 for none); "
        "a check that crashes its worker is recorded and the run goes on",
    )
    run.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="time limit for one framework call (default 120; 0: none)",
    )
    run.add_argument("--out", default=str(DEFAULT_OUT), help="output directory (default: reports/)")
    run.add_argument("--no-report", action="store_true", help="write results only, no HTML report")
    run.add_argument("--verbose", "-v", action="store_true", help="one line per check")
    run.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress display (by default: a live line on a terminal, a line per tenth elsewhere)",
    )
    _add_split_options(run)
    run.add_argument("pytest_args", nargs="*", help="further pytest arguments, after --")
    run.set_defaults(func=cmd_run)

    plan = sub.add_parser("plan", help="list the checks a run would make, their estimated cost and shard")
    _add_selection_options(plan)
    _add_split_options(plan)
    plan.add_argument("--json", action="store_true", help="the whole plan as JSON (check ids, costs, shards)")
    plan.add_argument("pytest_args", nargs="*", help="further pytest arguments, after --")
    plan.set_defaults(func=cmd_plan)

    cov = sub.add_parser("coverage", help="what results exercised, per framework and API")
    cov.add_argument("results", nargs="+", help="results.jsonl files")
    cov.add_argument("--json", action="store_true")
    cov.set_defaults(func=cmd_coverage)

    apis = sub.add_parser("apis", help="list the APIs, options and declared conventions")
    apis.add_argument("--framework", action="append", default=[])
    apis.set_defaults(func=cmd_apis)

    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return parser


def _add_selection_options(parser: argparse.ArgumentParser) -> None:
    """What is planned: shared by `run` and `plan`, so a plan is exactly what the same run would make."""
    parser.add_argument("--cases", help="case file or directory (default: the bundled cases/)")
    parser.add_argument(
        "--framework",
        action="append",
        default=[],
        metavar="NAME",
        help="only this framework (see `klconf apis` for their names); repeatable",
    )
    parser.add_argument(
        "--api",
        action="append",
        default=[],
        metavar="MODULE:OBJECT",
        help="also check a third-party implementation (an Api entry); repeatable",
    )
    parser.add_argument("--only-api", action="store_true", help="check only the --api entries")
    parser.add_argument(
        "--check",
        action="append",
        default=[],
        choices=kinds.names(),
        help="only these kinds of check (default: all); repeatable",
    )
    parser.add_argument("--device", action="append", default=[], choices=("cpu", "cuda"))
    parser.add_argument("--dtype", action="append", default=[], choices=("float16", "bfloat16", "float32", "float64"))
    parser.add_argument("-k", dest="keyword", help="pytest -k expression over check ids")
    parser.add_argument("-m", dest="markexpr", help="pytest -m expression over framework/device/dtype markers")
    parser.add_argument(
        "--expectations",
        metavar="DIR",
        help="expectations manifests (default: cases/expectations; 'none' for raw verdicts)",
    )


def _add_split_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shard",
        metavar="K/N",
        help="only the K-th of N shards of the plan, balanced by cost; "
        "the N shards together are the whole plan (merge them with `klconf merge`)",
    )
    parser.add_argument(
        "--durations",
        action="append",
        default=[],
        metavar="RESULTS",
        help="balance shards by the check durations of an earlier run's results (default: an "
        "estimate from kind of check, case size and dtype); repeatable",
    )


# --------------------------------------------------------------------------- run


def pytest_arguments(args, results: Path) -> list[str]:
    argv = selection_arguments(args) + [f"--klconf-results={results}"] + _lighter_pytest(args.pytest_args)
    if str(args.workers) != "0":
        argv += ["-n", str(args.workers), "--dist", "worksteal", "--max-worker-restart=1000"]  # idle workers take work
    if args.timeout is not None:
        argv.append(f"--klconf-timeout={args.timeout}")
    argv += ["-rN", "-q" if not args.verbose else "-v", "--tb=no" if not args.verbose else "--tb=line"]
    return argv + list(args.pytest_args)


def _lighter_pytest(user_args: list[str]) -> list[str]:
    """pytest machinery a klconf run does not use, turned off, each unless the user's own pytest arguments
    (`klconf run -- ...`) configure it. Each costs every one of tens of thousands of items a little:
    - log capture wraps every phase of every item in handlers on every logger (about 0.3 ms an item, a
      tenth of a fast check's cost); a check's output and warnings are caught by its own guard (sandbox.py);
    - Hypothesis' pytest plugin hooks every item and, at the end, imports Hypothesis to read their reports
      (klconf's checks are no Hypothesis tests; `klconf explore` runs Hypothesis without pytest);
    - assertion rewriting rewrites the check modules' asserts, which have none: a record decides a check.
    Measured on 29,000 trivial items: about 0.2 ms an item for the plugin, as much for the rewriting."""
    given = " ".join(user_args)
    argv = []
    if not any(a.startswith(("--log", "log_")) for a in user_args):
        argv += ["-p", "no:logging"]
    if "hypothesis" not in given:
        argv += ["-p", "no:hypothesispytest"]
    if "--assert" not in given:
        argv.append("--assert=plain")
    return argv


def selection_arguments(args) -> list[str]:
    """pytest arguments for what is planned and which shard of it runs (`run` and `plan` alike)."""
    chosen = [kinds.by_name(name) for name in args.check]
    modules = [f"conformance.checks.test_{kind.module}" for kind in chosen if kind] or ["conformance.checks"]
    argv = [
        "--pyargs",
        *modules,
        "-p",
        "no:cacheprovider",
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
    ]  # klconf is imported before pytest starts
    if not _plugin_autoloaded():
        argv += ["-p", "conformance.plugin"]
    if args.cases:
        argv.append(f"--klconf-cases={args.cases}")
    for name in args.framework:
        argv.append(f"--klconf-framework={name}")
    for spec in args.api:
        argv.append(f"--klconf-api={spec}")
    if args.only_api:
        argv.append("--klconf-only-plugins")
    if args.expectations:
        argv.append(f"--klconf-expectations={args.expectations}")
    argv += [f"--klconf-device={d}" for d in args.device] + [f"--klconf-dtype={d}" for d in args.dtype]
    if args.keyword:
        argv += ["-k", args.keyword]
    if args.markexpr:
        argv += ["-m", args.markexpr]
    if args.shard:
        argv.append(f"--klconf-shard={args.shard}")
    argv += [f"--klconf-durations={path}" for path in args.durations]
    return argv


def _plugin_autoloaded() -> bool:
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return False
    return any(ep.value == "conformance.plugin" for ep in importlib.metadata.entry_points(group="pytest11"))


def _check_selection(args) -> None:
    """Fail fast, in one line each, before pytest starts."""
    from .frameworks import FRAMEWORKS

    unknown = [f for f in args.framework if f not in FRAMEWORKS]
    if unknown:
        raise UsageError(f"unknown framework(s): {', '.join(unknown)} (known: {', '.join(FRAMEWORKS)})")
    from .cases import load_corpus
    from .frameworks import load_plugin
    from .sharding import ShardSpec

    _, problems = load_corpus(args.cases)  # every problem at once
    if problems:
        raise UsageError("invalid case files:\n  " + "\n  ".join(map(str, problems)))
    for spec in args.api:
        try:
            load_plugin(spec)
        except Exception as exc:
            raise UsageError(f"--api {spec}: {type(exc).__name__}: {exc}") from None
    if args.shard:
        try:
            ShardSpec.parse(args.shard)
        except ValueError as exc:
            raise UsageError(f"--shard: {exc}") from None
    for path in args.durations:
        if not Path(path).is_file():
            raise UsageError(f"--durations: no such results file: {path}")


def cmd_run(args) -> int:
    import pytest

    _check_selection(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    plugins = []
    if not (args.verbose or args.no_progress):
        from .progress import Progress

        plugins.append(Progress.for_stream(sys.stderr))
    code = pytest.main(pytest_arguments(args, results), plugins=plugins)
    if not args.no_report and results.exists():
        from .report import write_report

        index = write_report([results], out)
        print(f"klconf: report written to {index}")
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        if args.shard:  # more shards than costly checks, or a selection that leaves this one empty
            print(f"klconf: shard {args.shard} holds no checks of this plan", file=sys.stderr)
            return 0
        print("klconf: no checks selected", file=sys.stderr)
    return int(code)


def cmd_plan(args) -> int:
    """Collect (nothing runs) and write the plan: every check, its cost, and the shard it falls in."""
    import json
    import tempfile

    import pytest

    _check_selection(args)
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp) / "plan.json"
        argv = selection_arguments(args) + [f"--klconf-plan-out={where}", "--collect-only", "-q", "-p", "no:xdist"]
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            code = pytest.main(argv + list(args.pytest_args))
        if not where.exists():
            raise UsageError(
                f"no plan was made (pytest exit status {int(code)}); run `klconf run` with the same options to see why"
            )
        plan = json.loads(where.read_text(encoding="utf-8"))
    if args.json:
        print(json.dumps(plan, indent=1))
        return 0
    checks = plan["checks"]
    measured = sum(c["measured"] for c in checks)
    print(
        f"plan {plan['plan_hash']}: {len(checks):,} checks, {sum(plan['loads']):,.1f} s estimated"
        f" ({measured:,} costs measured in an earlier run)"
    )
    for k, (count, load) in enumerate(zip(plan["counts"], plan["loads"]), start=1):
        mark = "  <- this shard" if args.shard and args.shard.split("/")[0] == str(k) else ""
        print(f"  shard {k}/{plan['shards']}: {count:,} checks, {load:,.1f} s{mark}")
    return 0


def cmd_coverage(args) -> int:
    import json

    from . import coverage, results

    events = []
    for path in args.results:
        if not Path(path).exists():
            raise UsageError(f"no such results file: {path}")
        events += [e for _, e, _ in results.iter_events(path) if e is not None]
    summary = coverage.summarize(events)
    print(json.dumps(summary, indent=2) if args.json else coverage.render(summary))
    return 0


def cmd_apis(args) -> int:
    from . import frameworks

    names = args.framework or list(frameworks.FRAMEWORKS)
    for api in frameworks.builtin_apis(names):
        for options in api.options:
            default = " (default)" if api.is_default(options) and options else ""
            label = api.option_label(options) or "-"
            print(f"{api.name:45s} {label:50s}{default}\n    {api.convention(options).describe()}")
    return 0
