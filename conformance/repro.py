"""Standalone reproduction snippets for failing checks.

A report is built from results files alone, on a machine that may have none of the
frameworks, so the snippet is written when the check runs and stored in the record
(`record.extra["repro"]`). It imports only NumPy and the API's framework, states the fed
inputs literally (every float at full precision, in the carrier dtype that holds them
exactly), makes the exact call with its options, and prints the observed and the expected
values. Inputs too large to print are regenerated with klconf's own case loader instead.

The framework's part (imports, building native arrays, reading the output back) comes from
its binding's `Snippet`; the call comes from the `Api.snippet` template. A plug-in Api
without a template is called through klconf, which its author has installed anyway.
"""

from __future__ import annotations

import keyword
import sys
import textwrap

import numpy as np

from .frameworks import Api, binding

LITERAL_LIMIT = 1024  # input values (both arguments together) printed literally; above: regenerated
EXPECTED_LIMIT = 256  # expected values printed literally; above: the value at the worst element
_RESERVED = {"np", "result", "observed", "expected", "weights", "entropy", "metric", "api", "fw", "bind", "case"}


def attach(record, check, args, weights, conv, expected=None, worst_index=None) -> None:
    """Store the snippet in `record.extra["repro"]`; a problem here never changes the verdict."""
    try:
        record.extra["repro"] = snippet(check, args, weights, conv, expected, worst_index)
    except Exception as exc:  # the check's outcome matters more than its snippet
        record.extra["repro_error"] = f"{type(exc).__name__}: {exc}"


def snippet(check, args, weights, conv, expected=None, worst_index=None) -> str:
    """A self-contained Python script reproducing `check` (see the module docstring).

    args: the fed arguments in call order, class axis last (runner.fed_arguments);
    weights: the per-row sample weights or None; conv: the declared convention;
    expected: the oracle's value under it (class axis last); worst_index: where it failed worst.
    """
    from .runner import feed_axis

    api: Api = check.api
    options = check.options
    axis = feed_axis(conv.class_axis, len(check.case.shape))
    names = _variable_names(conv.arguments)
    setup = binding(api.framework).snippet
    lines = [
        f"# klconf reproduction of {check.id}",
        f"# {api.name}({api.option_label(options)}) in {check.dtype} on {check.device}",
        f"# declared convention: {conv.describe()}",
        "import numpy as np",
    ]
    lines += _header_imports(api, setup)
    if setup is not None:
        lines += [line for line in [setup.prelude(check.dtype, check.device)] if line]
    lines.append("")
    lines += _inputs(check, args, weights, conv, names, axis)
    lines.append("")
    if api.snippet is not None and setup is not None:
        lines += _templated_call(api, options, check, names, weights is not None, setup)
    else:
        lines += _plugin_call(api, options, check, names, weights is not None)
    lines += _expected_lines(expected, worst_index, axis, check)
    return "\n".join(lines) + "\n"


def _variable_names(arguments) -> tuple[str, str]:
    """The API's own parameter names where they are usable Python names, else a and b."""
    out = []
    for name, fallback in zip(arguments, ("a", "b")):
        name = str(name)
        ok = name.isidentifier() and not keyword.iskeyword(name) and name not in _RESERVED
        out.append(name if ok and name not in out else fallback)
    return out[0], out[1]


def _header_imports(api: Api, setup) -> list[str]:
    if api.snippet is not None and setup is not None:
        return [line for line in setup.imports.splitlines() if line]
    return []


def literal(values: np.ndarray, name: str = "") -> str:
    """`np.array([...], dtype=np.<carrier>)` holding exactly `values` (repr of each float64 round-trips);
    rows are aligned for an assignment to `name`."""
    arr = np.asarray(values)
    body = _nested(arr.astype(np.float64), len(name) + len(" = np.array("))
    return f"np.array({body}, dtype=np.{arr.dtype.name})"


def _number(x: float) -> str:
    if np.isnan(x):
        return "np.nan"
    if np.isinf(x):
        return "np.inf" if x > 0 else "-np.inf"
    return repr(float(x))


def _nested(arr: np.ndarray, indent: int) -> str:
    if arr.ndim == 0:
        return _number(float(arr))
    if arr.ndim == 1:
        return "[" + ", ".join(_number(float(x)) for x in arr) + "]"
    pad = " " * (indent + 1)
    inner = f",\n{pad}".join(_nested(row, indent + 1) for row in arr)
    return f"[{inner}]"


def _inputs(check, args, weights, conv, names, axis) -> list[str]:
    """The fed arguments as NumPy arrays, literally or regenerated from the case."""
    roles = [
        f"{'P' if name == conv.p_argument else 'Q'} as {space}" for name, space in zip(conv.arguments, conv.input_space)
    ]
    size = sum(int(np.size(a)) for a in args) + (int(np.size(weights)) if weights is not None else 0)
    lines = []
    if size <= LITERAL_LIMIT:
        for var, arg, role in zip(names, args, roles):
            lines.append(f"{var} = {literal(arg, var)}  # {role}")
        if weights is not None:
            lines.append(f"weights = {literal(weights, 'weights')}  # per-row sample weights")
    else:
        case = check.case
        lines += [
            f"# The inputs ({size:,} values) are too large to print; klconf regenerates them exactly",
            "# (run from a klconf checkout, or point load_cases at your copy of the case file):",
            "from conformance.cases import load_cases",
            "from conformance.runner import fed_value, weights_for",
            f"case = next(c for c in load_cases({case.file!r}) if c.id == {case.id!r})",
        ]
        for var, name, space, role in zip(names, conv.arguments, conv.input_space, roles):
            side = "p" if name == conv.p_argument else "q"
            lines.append(f"{var} = np.array(fed_value(case, {side!r}, {space!r}, {check.dtype!r}))  # {role}")
        if weights is not None:
            lines.append("weights = weights_for(case.shape)  # per-row sample weights")
    if axis is not None:
        lines.append(f"# {check.api.name} takes the class axis at {axis}; klconf's values have it last")
        lines += [f"{var} = np.moveaxis({var}, -1, {axis})" for var in names]
    return lines


def _call_lines(template: str, names, options, dtype: str, has_weights: bool) -> list[str]:
    text = template.format(a=names[0], b=names[1], w="weights" if has_weights else "None", o=options, dtype=dtype)
    lines = text.splitlines()
    return lines[:-1] + [f"result = {lines[-1]}"]


def _templated_call(api: Api, options, check, names, has_weights: bool, setup) -> list[str]:
    template = api.snippet(options) if callable(api.snippet) else api.snippet
    assert template is not None, "only an API with a snippet is called from its template"
    body = [f"{var} = {setup.native(var, check.dtype, check.device)}" for var in names]
    if has_weights:
        body.append(f"weights = {setup.native('weights', check.dtype, check.device)}")
    body += _call_lines(template, names, options, check.dtype, has_weights)
    body.append(f"observed = {setup.to_numpy.format(result='result')}")
    header = setup.context(check.dtype, check.device)
    if header:
        return [header] + [textwrap.indent(line, "    ") for line in body]
    return body


def _plugin_call(api: Api, options, check, names, has_weights: bool) -> list[str]:
    """For an Api without a template: load the entry and call it the way klconf does."""
    module, attribute = _locate(api)
    lines = [
        f"# {api.name} has no snippet template: this calls its klconf Api entry as klconf does",
        f"# (klconf and the module {module} must be importable, as for --api)",
        "from conformance.frameworks import Api, binding",
    ]
    if attribute:
        lines += [
            f"from {module} import {attribute} as entry",
            f"api = next(a for a in ([entry] if isinstance(entry, Api) else entry) if a.name == {api.name!r})",
        ]
    else:
        lines += [
            f"import {module}",
            f"api = next(v for v in vars({module}).values() if isinstance(v, Api) and v.name == {api.name!r})",
        ]
    lines += [f"bind = binding({api.framework!r})", "fw = bind.handle()"]
    for var in names + (("weights",) if has_weights else ()):
        lines.append(f"{var} = bind.to_native(fw, {var}, {check.dtype!r}, {check.device!r})")
    weights = "weights" if has_weights else "None"
    lines += [
        f"result = api.call(fw, {names[0]}, {names[1]}, {options!r}, {weights})",
        "observed = bind.to_numpy(fw, result)[0]",
    ]
    return lines


def _locate(api: Api) -> tuple[str, str]:
    """(module, attribute) under which the plug-in's Api entry (or a list holding it) can be imported."""
    module_name = getattr(api.call, "__module__", None) or "__main__"
    module = sys.modules.get(module_name)
    for attr, value in vars(module).items() if module else ():
        if value is api or (isinstance(value, (list, tuple)) and any(v is api for v in value)):
            return module_name, attr
    return module_name, ""


def _expected_lines(expected, worst_index, axis, check) -> list[str]:
    lines = ["", "np.set_printoptions(precision=17)", "print('observed:', observed)"]
    if expected is None:
        return lines
    exp = np.asarray(expected, dtype=np.float64)
    index = tuple(int(i) for i in worst_index) if worst_index is not None else None
    if axis is not None and exp.ndim == len(check.case.shape):  # the API's layout, as observed
        exp = np.moveaxis(exp, -1, axis)
        index = _moved_index(index, axis) if index is not None else None
    if exp.size <= EXPECTED_LIMIT:
        lines.insert(1, f"expected = {literal(exp, 'expected')}  # the oracle, under the declared convention")
        lines.append("print('expected:', expected)")
    elif index is not None and len(index) == exp.ndim:
        lines.insert(1, f"expected_at_worst = {_number(float(exp[index]))}  # the oracle at {list(index)}")
        lines.append(f"print('observed at {list(index)}:', observed[{index!r}], 'expected:', expected_at_worst)")
    return lines


def _moved_index(index: tuple, axis: int) -> tuple:
    """An index in class-last layout, moved the way np.moveaxis(-1, axis) moves the array."""
    moved = list(index)
    moved.insert(axis, moved.pop())
    return tuple(moved)
