"""`klconf cases`: validate the corpus, recompute its stored values, fill new ones, list it.

    klconf cases check [--cases PATH] [--expectations DIR]
    klconf cases fill [--cases PATH] [--update]
    klconf cases list [--cases PATH]

`check` loads every case file (tensor-level and distribution cases) and every expectations manifest,
recomputes each stored expected value with the oracle and prints one line per problem (file, line,
field), then a summary; it exits 1 on any problem. `fill` writes the oracle's values, each with the
provenance that states its certified bound, into entries that have none (`--update`: also rewrites
values or provenance that disagree). The oracle and the loaders are imported only when a command runs.
"""

from __future__ import annotations

import sys


def add_commands(sub) -> None:
    cases = sub.add_parser("cases", help="validate and fill case files")
    cases_sub = cases.add_subparsers(metavar="ACTION")
    check = cases_sub.add_parser("check", help="validate every case file and recompute every stored value")
    check.add_argument("--cases", help="case file or directory (default: the bundled cases/)")
    check.add_argument("--expectations", metavar="DIR", help="expectations manifests to validate ('none' to skip)")
    check.set_defaults(func=cmd_cases_check)
    fill = cases_sub.add_parser("fill", help="write oracle values (and generator digests) into case files")
    fill.add_argument("--cases", help="case file or directory (default: the bundled cases/)")
    fill.add_argument("--update", action="store_true", help="also replace stored values that disagree")
    fill.set_defaults(func=cmd_cases_fill)
    listing = cases_sub.add_parser("list", help="list cases: id, shape, tags")
    listing.add_argument("--cases")
    listing.set_defaults(func=cmd_cases_list)


def cmd_cases_check(args) -> int:
    from . import expectations, frameworks, stored
    from .cases import load_corpus

    cases, problems = load_corpus(args.cases)
    confirmed = 0
    for case in cases:
        case_problems = stored.verify(case)
        problems += case_problems
        if not case_problems:
            confirmed += 1
    from .distributions import stored as distribution_stored
    from .distributions.cases import load_corpus as load_distribution_corpus

    distribution_summary, distribution_problems = distribution_stored.check(args.cases)
    if args.expectations != "none":
        manifest = expectations.load(
            args.expectations,
            cases,
            frameworks.builtin_apis(),
            load_distribution_corpus(args.cases)[0],
            strict_cases=expectations.owns(args.expectations, args.cases),
        )
        problems += manifest.problems
    problems += distribution_problems
    for problem in problems:
        print(problem)
    values = sum(_stored_count(c) for c in cases)
    print(
        f"{len(cases)} cases loaded, {confirmed} confirmed ({values} stored values recomputed); "
        f"{distribution_summary}; {len(problems)} problem(s)"
    )
    return 1 if problems else 0


def _stored_count(case) -> int:
    import numpy as np

    if not case.expected:
        return 0
    return sum(int(np.size(case.expected[k])) for k in ("kl_per_row", "elementwise") if k in case.expected)


def cmd_cases_fill(args) -> int:
    from . import stored

    changes, problems = stored.fill(args.cases, update=args.update)
    from .distributions import stored as distribution_stored

    distribution_changes, distribution_problems = distribution_stored.fill(args.cases, update=args.update)
    changes, problems = changes + distribution_changes, problems + distribution_problems
    for problem in problems:
        print(problem)
    for change in changes:
        print(change)
    print(f"{len(changes)} change(s)")
    return 1 if problems else 0


def cmd_cases_list(args) -> int:
    from .cases import load_corpus

    cases, problems = load_corpus(args.cases)
    for problem in problems:
        print(problem, file=sys.stderr)
    for case in cases:
        print(f"{case.id:40s} {str(list(case.shape)):18s} {','.join(case.tags)}")
    return 1 if problems else 0
