"""`klconf port`: a KL call's equivalent in another framework, verified on the corpus in this run.

    klconf port API [--option k=v ...] --to FRAMEWORK [--json] [--case ID ...] [--cases PATH] [--api MODULE:OBJECT]

Prints the snippet (which defines `equivalent(p, q)`), then on stderr how it was verified.
With --json: one object with source, options, target_framework, verdict, code, expression,
verified_cases, differs_on (case, dtypes, reason), out_of_domain and float16 (checked apart),
not_applicable, convention, notes. The exit status is 0 when the equivalent is verified on every
in-domain case it applies to and 1 when it differs somewhere (the snippet is printed either way).
Frameworks are imported only when the command runs.
"""

from __future__ import annotations

import json
import sys


def add_commands(sub) -> None:
    from .vocabulary import TARGETS

    cmd = sub.add_parser(
        "port",
        help="the equivalent of a KL call in another framework, verified on the corpus",
        usage="klconf port API [--option K=V ...] --to FRAMEWORK [--json]",
    )
    cmd.add_argument("api", metavar="API", help="the source call, named as `klconf apis` lists it")
    cmd.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="K=V",
        help="an option of the source call (others at their defaults); repeatable",
    )
    cmd.add_argument("--to", required=True, choices=TARGETS, dest="target", help="the target framework")
    cmd.add_argument("--json", action="store_true", help="one JSON object instead of the snippet")
    cmd.add_argument(
        "--case",
        action="append",
        default=[],
        metavar="ID",
        help="verify on these cases only (default: every tensor-level case); repeatable",
    )
    cmd.add_argument("--cases", help="case file or directory (default: the bundled cases/)")
    cmd.add_argument(
        "--api",
        dest="plugins",
        action="append",
        default=[],
        metavar="MODULE:OBJECT",
        help="Api entries to look API up in, besides the built-in ones",
    )
    cmd.set_defaults(func=cmd_port)


def cmd_port(args) -> int:
    from ..cases import CaseFileError, load_cases
    from ..cli import UsageError
    from ..discovery_commands import _apis, _resolve
    from ..frameworks import Unavailable
    from ..results import jsonable
    from .port import port

    api, options = _resolve(_apis([], args.plugins, False), args.api, args.option)
    try:
        cases = load_cases(args.cases)
    except CaseFileError as exc:
        raise UsageError(f"invalid case files:\n{exc}") from None
    if not cases:  # a corpus of distribution cases alone: nothing to verify an equivalent on
        raise UsageError(f"no tensor-level cases in {args.cases}: an equivalent is verified on tensor-level cases")
    if args.case:
        known = {c.id for c in cases}
        missing = [c for c in args.case if c not in known]
        if missing:
            raise UsageError(f"no case {', '.join(map(repr, missing))} in the corpus")
        cases = [c for c in cases if c.id in args.case]
    if args.target == api.framework:
        raise UsageError(f"{api.name} is a {api.framework} call already: choose another target framework")
    try:
        result = port(api, options, args.target, cases)
    except Unavailable as exc:
        raise UsageError(f"cannot port {api.name} to {args.target} here: {exc}") from None
    data = result.to_json()
    if args.json:
        print(json.dumps(jsonable(data), indent=1))
    else:
        print(result.code, end="")
        print(_summary(data), file=sys.stderr)
    return 0 if result.verdict == "pass" else 1


def _summary(data: dict) -> str:
    lines = [
        f"klconf: {data['source']} -> {data['target_framework']}: verified on {data['verified_cases']} cases "
        f"({', '.join(data['dtypes'])}) in {data['seconds']:.1f} s"
    ]
    for entry in data["differs_on"]:
        lines.append(f"  differs on {entry['case']} ({', '.join(entry['dtypes'])}): {entry['reason']}")
    outside = data["out_of_domain"]
    if outside["differs_on"]:
        lines.append(
            f"  outside the contract (not probabilities), differs on "
            f"{', '.join(e['case'] for e in outside['differs_on'])}"
        )
    half = data["float16"]
    lines.append(
        f"  float16 (checked apart): verified on {half['verified_cases']} cases"
        + (f", differs on {', '.join(e['case'] for e in half['differs_on'])}" if half["differs_on"] else "")
    )
    for entry in data["not_applicable"]:
        lines.append(f"  not applicable: {entry['case']}: {entry['reason']}")
    return "\n".join(lines)
