"""`klconf conventions` and `klconf explain`: convention discovery on the command line.

    klconf conventions [--framework NAME ...] [--api MODULE:OBJECT ...] [--only-api] [--json] [-n N]
    klconf explain API_A [--option k=v ...] --vs API_B [--option k=v ...] [--case ID]

`conventions` prints one row per API x options with the inferred fields (`--json`: a list
of objects holding exactly those fields plus "api" and "options"), then the fields where an
adapter's declaration differs, and how long inference took. `explain` runs two calls on a
case and says why their values differ. Frameworks are imported only when a command runs.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import time
from dataclasses import dataclass, field


def add_commands(sub) -> None:
    conv = sub.add_parser("conventions", help="infer every API's conventions from its outputs (a table)")
    conv.add_argument(
        "--framework",
        action="append",
        default=[],
        metavar="NAME",
        help="only this framework (see `klconf apis` for their names); repeatable",
    )
    conv.add_argument(
        "--api",
        action="append",
        default=[],
        metavar="MODULE:OBJECT",
        help="also infer the conventions of these Api entries; repeatable",
    )
    conv.add_argument("--only-api", action="store_true", help="only the --api entries")
    conv.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    conv.add_argument("--json", action="store_true", help="a JSON list of objects instead of the table")
    conv.add_argument(
        "-n",
        "--workers",
        default="auto",
        help="processes inferring at once, each taking whole frameworks (a number, or 'auto' = one per CPU; "
        "0 or 1: this process)",
    )
    conv.set_defaults(func=cmd_conventions)

    exp = sub.add_parser(
        "explain",
        help="why two KL calls give different values on a case",
        usage="klconf explain API_A [--option k=v ...] --vs API_B [--option k=v ...] [--case ID]",
    )
    exp.add_argument("api_a", metavar="API_A")
    exp.add_argument(
        "--option",
        action=_Option,
        metavar="K=V",
        help="an option of the call before it (API_A, or API_B after --vs); repeatable",
    )
    exp.add_argument("--vs", action=_Vs, required=True, metavar="API_B")
    exp.add_argument("--case", default="forum-example", help="case id (default: forum-example)")
    exp.add_argument("--cases", help="case file or directory (default: the bundled cases/)")
    exp.add_argument(
        "--api",
        action="append",
        default=[],
        metavar="MODULE:OBJECT",
        help="Api entries to look API_A and API_B up in, besides the built-in ones",
    )
    exp.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    exp.add_argument("--dtype", default="float64", choices=("float16", "bfloat16", "float32", "float64"))
    exp.set_defaults(func=cmd_explain, options_a=None, options_b=None, api_b=None)


class _Vs(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        namespace.api_b = values


class _Option(argparse.Action):
    """--option belongs to API_A until --vs has been read, then to API_B."""

    def __call__(self, parser, namespace, values, option_string=None):
        target = "options_b" if namespace.api_b else "options_a"
        setattr(namespace, target, (getattr(namespace, target) or []) + [values])


# --------------------------------------------------------------------------- shared


def _usage_error(message: str):
    from .cli import UsageError

    return UsageError(message)


def _apis(frameworks_: list[str], plugins: list[str], only_plugins: bool):
    from . import frameworks

    unknown = [f for f in frameworks_ if f not in frameworks.FRAMEWORKS]
    if unknown:
        raise _usage_error(f"unknown framework(s): {', '.join(unknown)} (known: {', '.join(frameworks.FRAMEWORKS)})")
    apis = [] if only_plugins else frameworks.builtin_apis(frameworks_ or frameworks.FRAMEWORKS)
    for spec in plugins:
        try:
            apis += frameworks.load_plugin(spec)
        except Exception as exc:
            raise _usage_error(f"--api {spec}: {type(exc).__name__}: {exc}") from None
    return apis


# --------------------------------------------------------------------------- conventions


def cmd_conventions(args) -> int:
    apis = _apis(args.framework, args.api, args.only_api)
    started = time.perf_counter()
    parts = _by_framework(apis, _workers(args.workers))
    if len(parts) > 1:
        outcomes = _in_processes(parts, args.device)
    else:
        outcomes = [_infer_all(part, args.device) for part in parts]
    rows = [row for o in outcomes for row in o.rows]
    skipped = [line for o in outcomes for line in o.skipped]
    findings = [finding for o in outcomes for finding in o.findings]
    calls = sum(o.calls for o in outcomes)
    order = {(a.name, a.option_label(options)): i for i, a in enumerate(apis) for options in a.options}
    rows.sort(key=lambda row: order.get((row["api"], _label(apis, row)), 0))  # the order `klconf apis` lists
    findings.sort(key=lambda finding: order.get((finding[0], finding[1]), 0))  # (stable: fields keep their order)
    seconds = time.perf_counter() - started
    workers = f", {len(parts)} processes" if len(parts) > 1 else ""
    timing = f"{len(rows)} API calls x options inferred in {seconds:.1f} s ({calls} calls to the APIs{workers})"
    if args.json:
        from .results import jsonable

        print(json.dumps(jsonable(rows), indent=1))
        for line in skipped + [timing]:
            print(line, file=sys.stderr)
        return 0
    print(_table(rows))
    if findings:
        print("\nwhere the adapter declares otherwise:")
        for name, label, field, declared, inferred, evidence in findings:
            print(
                f"  {name} [{label}] {field}: declared {_cell(field, declared)}, inferred {_cell(field, inferred)}"
                f"\n      {evidence}"
            )
    for line in skipped:
        print(f"skipped: {line}")
    print(timing)
    return 0


@dataclass
class _Inferred:
    """What one process inferred: plain data, so it crosses a process boundary."""

    rows: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    findings: list[tuple] = field(default_factory=list)
    calls: int = 0


def _infer_all(apis: list, device: str) -> _Inferred:
    from .frameworks import Unavailable
    from .inference import FIELDS, compare, infer

    out = _Inferred()
    for api in apis:
        for options in api.options:
            try:
                inference = infer(api, options, device)
            except Unavailable as exc:
                out.skipped.append(f"{api.name} [{api.option_label(options)}]: {exc}")
                continue
            out.calls += inference.calls
            out.rows.append({"api": api.name, "options": dict(options), **{f: inference.fields[f] for f in FIELDS}})
            comparison = compare(inference, api, options)
            for name in comparison.disagreements:
                out.findings.append(
                    (
                        api.name,
                        api.option_label(options),
                        name,
                        comparison.declared[name],
                        inference.fields[name],
                        inference.evidence[name],
                    )
                )
    return out


def _label(apis: list, row: dict) -> str:
    api = next((a for a in apis if a.name == row["api"]), None)
    return api.option_label(row["options"]) if api is not None else ""


def _workers(text: str) -> int:
    import os

    if str(text) == "auto":
        return os.cpu_count() or 1
    try:
        count = int(text)
    except ValueError:
        raise _usage_error(f"--workers: a number or 'auto', not {text!r}") from None
    if count < 0:
        raise _usage_error(f"--workers: a number or 'auto', not {text!r}")
    return max(1, count)


# Seconds inferring one framework costs before its calls (importing it, or starting Keras' child process),
# and per option set, so that a split is balanced. Measured on every built-in API, one framework per process
# (`klconf conventions --framework NAME --workers 1`, less about 1.2 s of interpreter and klconf start):
# TensorFlow 13.7 s for 22 option sets, Keras on PyTorch 10.4 s for 14, Keras on JAX 10.0 s for 14, JAX 7.7 s
# for 7 (its first calls compile), PyTorch 5.6 s for 19, SciPy 1.4 s, MLX 0.7 s. Other frameworks and plug-ins:
# the defaults.
_IMPORT_SECONDS = {"tensorflow": 6.0, "keras_jax": 4.0, "keras_torch": 4.0, "torch": 2.5, "jax": 1.5, "paddle": 4.0}
_SECONDS_PER_OPTION_SET = {"tensorflow": 0.3, "keras_jax": 0.35, "keras_torch": 0.37, "torch": 0.1, "jax": 0.7}
_THREADED = ("jax", "keras", "tensorflow", "torch", "paddle", "mlx")  # frameworks that start threads on import


def _estimate(framework: str, apis: list) -> float:
    """Seconds inferring these APIs of one framework takes: nothing where it is not installed (a skip)."""
    from .frameworks import binding

    try:
        if binding(framework).available():
            return 0.0
    except Exception:  # a plug-in's framework name klconf does not bind: its APIs say why when they run
        return 0.0
    per_option_set = _SECONDS_PER_OPTION_SET.get(framework, 0.4)
    return _IMPORT_SECONDS.get(framework, 1.5) + per_option_set * sum(len(a.options) for a in apis)


def _by_framework(apis: list, workers: int) -> list[list]:
    """The APIs in at most `workers` parts, whole frameworks each (a framework is imported by one process
    only), balanced by estimated seconds: longest first, each to the lightest part."""
    frameworks: dict[str, list] = {}
    for api in apis:
        frameworks.setdefault(api.framework, []).append(api)
    if workers <= 1 or len(frameworks) <= 1:
        return [list(apis)]
    cost = {name: _estimate(name, members) for name, members in frameworks.items()}
    parts: list[list] = [[] for _ in range(max(1, min(workers, len(frameworks))))]
    loads = [0.0] * len(parts)
    for name in sorted(frameworks, key=lambda n: (-cost[n], n)):
        lightest = min(range(len(parts)), key=lambda k: (loads[k], k))
        parts[lightest] += frameworks[name]
        loads[lightest] += cost[name]
    return [part for part in parts if part] or [[]]


_FORKED_PARTS: list[list] = []


def _infer_part(index: int, device: str) -> _Inferred:
    return _infer_all(_FORKED_PARTS[index], device)


def _in_processes(parts: list[list], device: str) -> list[_Inferred]:
    """One forked process per part; where fork is not available, or a framework is already imported here (a
    plug-in's module imported it: forking its threads can deadlock), or a part's process dies, this process."""
    import multiprocessing

    try:
        context = multiprocessing.get_context("fork")
    except ValueError:
        context = None
    if context is None or any(name in sys.modules for name in _THREADED):
        return [_infer_all(part, device) for part in parts]
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    _FORKED_PARTS[:] = parts  # the forked processes inherit the APIs (a plug-in's need not pickle)
    with ProcessPoolExecutor(max_workers=len(parts), mp_context=context) as pool:
        futures = [pool.submit(_infer_part, index, device) for index in range(len(parts))]
        outcomes = []
        for part, future in zip(parts, futures):
            try:
                outcomes.append(future.result())
            except BrokenProcessPool:  # a framework killed its process: infer its part here, where it shows
                outcomes.append(_infer_all(part, device))
    return outcomes


def _table(rows: list[dict]) -> str:
    from .inference import FIELDS

    columns = ("api", "options", *FIELDS)  # the table shows every inferred field, in inference's order
    cells = [[_cell(c, row[c]) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


_SHORT = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64"}


def _cell(column: str, value) -> str:
    if column == "options":
        return ",".join(f"{k}={v}" for k, v in value.items()) or "-"
    if column == "input_space" and isinstance(value, dict):
        return " ".join(f"{k}:{v}" for k, v in value.items())
    if column == "output_dtype" and isinstance(value, dict):
        changed = [f"{_SHORT.get(k, k)}->{_SHORT.get(v, v)}" for k, v in value.items() if k != v]
        return " ".join(changed) if changed else "as input"
    if column == "accumulation" and isinstance(value, dict):
        return " ".join(f"{_SHORT.get(k, k)}:{v}" for k, v in value.items()) or "-"
    if column == "clip_epsilon":
        return "none" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))
    if value is None:
        return "-"
    return str(value)


# --------------------------------------------------------------------------- explain


def cmd_explain(args) -> int:
    from .cases import CaseFileError, load_cases
    from .explain import ExplainError, explain
    from .frameworks import Unavailable

    apis = _apis([], args.api, False)
    api_a, options_a = _resolve(apis, args.api_a, args.options_a or [])
    api_b, options_b = _resolve(apis, args.api_b, args.options_b or [])
    try:
        corpus = {c.id: c for c in load_cases(args.cases)}
    except CaseFileError as exc:
        raise _usage_error(f"invalid case files:\n{exc}") from None
    case = corpus.get(args.case)
    if case is None:
        close = difflib.get_close_matches(args.case, list(corpus), n=3)
        raise _usage_error(f"no case {args.case!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
    try:
        lines = explain(api_a, options_a, api_b, options_b, case, args.device, args.dtype)
    except (Unavailable, ExplainError) as exc:
        raise _usage_error(str(exc)) from None
    print("\n".join(lines))
    return 0


def _resolve(apis, name: str, option_args: list[str]):
    """An Api by name and the one of its option combinations that --option values select."""
    matches = [a for a in apis if a.name == name]
    if not matches:
        close = difflib.get_close_matches(name, sorted({a.name for a in apis}), n=3, cutoff=0.5)
        raise _usage_error(f"no API named {name!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
    api = matches[0]
    wanted = {}
    for text in option_args:
        key, sep, value = text.partition("=")
        if not sep:
            raise _usage_error(f"--option expects K=V, got {text!r}")
        known = {str(v): v for o in api.options for k, v in o.items() if k == key}
        if not known:
            keys = sorted({k for o in api.options for k in o})
            raise _usage_error(f"{api.name} has no option {key!r} (options: {', '.join(keys) or 'none'})")
        if value not in known:
            raise _usage_error(f"{api.name}: {key}={value} is not covered (values: {', '.join(known)})")
        wanted[key] = known[value]
    fitting = [o for o in api.options if all(o.get(k) == v for k, v in wanted.items())]
    default = api.options[0]
    best = max(fitting, key=lambda o: sum(o.get(k) == v for k, v in default.items()))  # others at their defaults
    return api, best
