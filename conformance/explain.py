"""Why do two KL calls give different values on a case? Told from their inferred conventions.

Both calls are fed the case (P and Q converted to the space each argument was found to take,
classes on the axis each sums over) and run; their values and ratio are printed. Then the
oracle walks from A's convention to B's one field at a time (input spaces, elementwise term,
normalisation, clipping and zeros, reduction) on the same P and Q, and every field that moves
the value is stated with its effect. The reduction, the usual culprit, is put in words and
numbers: "factor 4.000 = B·C/B = 4/1: A (reduction=mean) divides the summed terms by every
element (B·C = 1·4 = 4); B (reduction=mean) sums over classes and averages over the batch
(÷ B = 1)".
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from . import convention_fields, judge, oracle
from .cases import Case
from .frameworks import Api
from .inference import UNKNOWN, Inference, infer
from .inference.candidates import Candidate, from_convention
from .inference.probes import BlackBox, Probe
from .runner import fed_value, weights_for


class ExplainError(Exception):
    """Something that makes the comparison impossible, said in one line."""


@dataclass
class Side:
    label: str  # "A" or "B"
    api: Api
    options: dict
    inference: Inference
    candidate: Candidate  # the convention used to feed the case and to explain (inferred where known)
    note: str  # why the declared convention stood in, if it did
    weights: np.ndarray | None
    value: np.ndarray | None
    error: str | None
    expected: oracle.Expectation
    judged: judge.Judgement | None

    @property
    def title(self) -> str:
        opts = self.api.option_label(self.options)
        return f"{self.api.name}" + (f" [{opts}]" if opts else "")


def explain(
    api_a: Api, options_a: dict, api_b: Api, options_b: dict, case: Case, device: str = "cpu", dtype: str = "float64"
) -> list[str]:
    """The explanation, as lines of text."""
    a = _side("A", api_a, options_a, case, device, dtype)
    b = _side("B", api_b, options_b, case, device, dtype)
    lines = [f"case {case.id} {list(case.shape)} ({dtype}, {device})"]
    for s in (a, b):
        lines.append(f"{s.label}  {s.title}")
        lines.append(f"   convention: {_describe(s)}" + (f" [{s.note}]" if s.note else ""))
        if s.error:
            lines.append(f"   raised {s.error}")
        else:
            lines.append(f"   value: {_show(s.value)}")
            lines.append(f"   {_fit(s)}")
    if a.error or b.error:
        return lines
    lines += _compare(a, b, case, dtype, device)
    return lines


# --------------------------------------------------------------------------- running one call


def _side(label: str, api: Api, options: dict, case: Case, device: str, dtype: str) -> Side:
    if dtype not in api.dtypes:
        raise ExplainError(f"{api.name} is not fed {dtype} (it takes {', '.join(api.dtypes)})")
    inference = infer(api, options, device)
    weights_fed = bool(options.get("sample_weight"))
    final, note = inference.final, ""
    conv = inference.convention()
    if conv is None or final is None:
        unknown = [f for f, v in inference.fields.items() if v == UNKNOWN]
        candidate = from_convention(api.convention(options), weights_fed)
        note = f"declared convention used: inference left {', '.join(unknown)} unknown"
    else:
        candidate = final
    weights = weights_for(case.shape) if weights_fed else None
    p_side = {candidate.p_index: "p", 1 - candidate.p_index: "q"}
    fed = (
        fed_value(case, p_side[0], candidate.spaces[0], dtype),
        fed_value(case, p_side[1], candidate.spaces[1], dtype),
    )
    axis = candidate.axis(len(case.shape))
    if axis is not None and axis != len(case.shape) - 1:
        fed = (np.ascontiguousarray(np.moveaxis(fed[0], -1, axis)), np.ascontiguousarray(np.moveaxis(fed[1], -1, axis)))
    box = BlackBox(api, options, device)
    obs = box(Probe(case.id, case.description, fed, dtype, weights))
    predicted = candidate.predict(fed, weights)
    if predicted is None:
        raise ExplainError(f"{api.name}'s convention cannot take {case.id} with per-row weights on its class axis")
    expected, moved = predicted
    value, judged = obs.value, None
    if value is not None:
        if moved is not None and value.ndim == len(case.shape):
            value = np.moveaxis(value, moved, -1)
        factor = api.tolerance.factor if api.tolerance else 1.0
        judged = judge.judge(expected, value, dtype, device, factor)
    return Side(label, api, options, inference, candidate, note, weights, value, obs.error, expected, judged)


def _fit(s: Side) -> str:
    j = s.judged
    assert j is not None, "only a side that returned a value is fitted"
    if j.verdict == "pass":
        err = (
            f"error {j.abs_error:.3g} within tolerance {j.tolerance:.3g}"
            if j.abs_error is not None
            else "special values match"
        )
        return f"the convention above reproduces it ({err})"
    return f"the convention above does NOT reproduce it: {j.message}"


# --------------------------------------------------------------------------- the comparison


def _compare(a: Side, b: Side, case: Case, dtype: str, device: str) -> list[str]:
    assert a.value is not None and b.value is not None, "only two calls that returned values are compared"
    lines = []
    same_shape = a.value.shape == b.value.shape
    if same_shape:
        factor = judge.judge(a.expected, b.value, dtype, device, 2.0)
        if factor.verdict == "pass":
            diff = float(np.max(np.abs(a.value - b.value))) if a.value.size else 0.0
            scale = float(np.max(np.abs(a.value))) if a.value.size else 0.0
            rel = diff / scale if scale else 0.0
            lines.append(
                f"A and B agree: |A - B| = {diff:.3g} (relative {rel:.3g}), within twice the {dtype} "
                f"tolerance of A's exact value ({factor.tolerance:.3g})"
            )
            steps = _chain(a, b, case, dtype)
            differing = [s for s in steps if s.differs]
            if differing:
                lines.append(
                    "their conventions differ without effect on this case: " + "; ".join(s.same for s in differing)
                )
            return lines
        ratio = _ratio(a.value, b.value)
        lines.append(f"B/A = {ratio}")
    else:
        lines.append(f"A returns shape {list(a.value.shape)}, B shape {list(b.value.shape)}: no single ratio")
    lines.append("why:")
    steps = _chain(a, b, case, dtype)
    moved = [s for s in steps if s.moved]
    for s in moved:
        lines.append(f"  {s.text}")
    if not moved:
        lines.append("  the inferred conventions predict the same value; the difference is rounding in each API")
    same_words = [s.same for s in steps if not s.moved and s.same]
    if same_words:
        lines.append("  otherwise the same: " + "; ".join(same_words))
    return lines


def _ratio(a: np.ndarray, b: np.ndarray) -> str:
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.asarray(b / a, np.float64)
    if r.size and np.all(np.isfinite(r)) and np.allclose(r, r.flat[0], rtol=1e-9):
        return f"{float(r.flat[0]):.3f}"
    return _show(r)


@dataclass
class Step:
    field: str
    moved: bool  # the value changed
    text: str
    same: str = ""  # said when the field is equal or has no effect
    differs: bool = False  # the conventions differ in this field


# The walk from one convention to another, a step per group of fields (conformance/convention_fields.py):
# the zeros move with clipping (a clipped input has none), the divisor with the reduction.
CHAIN = (
    ("input_space",),
    ("elementwise",),
    ("normalizes",),
    ("clip_epsilon", "zero_p", "zero_both", "zero_q"),
    ("reduction", "batch_divisor"),
)


def _chain(a: Side, b: Side, case: Case, dtype: str) -> list[Step]:
    """Walk from A's convention to B's, one field at a time, on the exact case values."""
    ndim = len(case.shape)
    ca, cb = a.candidate, b.candidate
    spec = ca.spec(ndim)
    steps = []

    def value(s: oracle.Spec, weights) -> np.ndarray:
        p = fed_value(case, "p", s.p_space, dtype)
        q = fed_value(case, "q", s.q_space, dtype)
        return oracle.expected(p, q, s, weights).value

    current = value(spec, a.weights if ca.weighted else None)
    target = cb.spec(ndim)
    changes = [(group[0], convention_fields.spec_changes(target, group)) for group in CHAIN]
    weights = a.weights if ca.weighted else None
    for name, change in changes:
        new_spec = replace(spec, **change)
        new_weights = (b.weights if cb.weighted else None) if name == "reduction" else weights
        if new_spec == spec and new_weights is weights:
            steps.append(Step(name, False, "", _same_words(name, a, b, case)))
            continue
        new = value(new_spec, new_weights)
        changed = new.shape != current.shape or not np.allclose(new, current, rtol=1e-12, atol=0, equal_nan=True)
        text = _step_text(name, a, b, current, new, case) if changed else ""
        steps.append(Step(name, changed, text, "" if changed else _same_words(name, a, b, case, no_effect=True), True))
        spec, current, weights = new_spec, new, new_weights
    return steps


def _same_words(name: str, a: Side, b: Side, case: Case, no_effect: bool = False) -> str:
    fa, fb = (s.candidate.fields(s.inference.arguments, bool(s.options.get("sample_weight"))) for s in (a, b))
    suffix = " (no effect here)" if no_effect else ""
    if name == "input_space":
        pa, pb = fa["p_argument"], fb["p_argument"]
        return (
            f"A reads P from {pa!r} as {fa['input_space'][pa]} and Q as {_q_space(fa)}, B reads P from {pb!r} "
            f"as {fb['input_space'][pb]} and Q as {_q_space(fb)}: the same distributions{suffix}"
        )
    if name == "elementwise":
        return (
            f"both sum {fa['elementwise']}"
            if not no_effect
            else f"elementwise {fa['elementwise']} vs {fb['elementwise']}{suffix}"
        )
    if name == "normalizes":
        return "neither rescales rows" if not fa["normalizes"] else "both rescale rows to sum to 1"
    if name == "clip_epsilon":
        return "no clipping" if fa["clip_epsilon"] is None else f"both clip to [{fa['clip_epsilon']:g}, 1]"
    if no_effect:
        ta, tb = _divisor(a.candidate, case.shape)[1], _divisor(b.candidate, case.shape)[1]
        return f"A {ta}, B {tb}: the same on shape {list(case.shape)}"
    return "the same reduction"


def _q_space(f: dict) -> str:
    return next(s for n, s in f["input_space"].items() if n != f["p_argument"])


def _step_text(name: str, a: Side, b: Side, before: np.ndarray, after: np.ndarray, case: Case) -> str:
    change = f"{_show(before)} -> {_show(after)}"
    ca, cb = a.candidate, b.candidate
    if name == "reduction":
        return _reduction_text(a, b, before, after, case)
    if name == "elementwise":
        extra = "adds q - p to every term" if cb.elementwise.endswith("-p+q") else "drops the q - p of every term"
        return f"elementwise: B {extra}: {change}"
    if name == "normalizes":
        who = "B" if cb.normalizes else "A"
        return f"normalisation: {who} rescales each row of P and Q to sum to 1 first: {change}"
    if name == "clip_epsilon":
        if cb.clip_epsilon is not None or ca.clip_epsilon is not None:
            who, eps = ("B", cb.clip_epsilon) if cb.clip_epsilon is not None else ("A", ca.clip_epsilon)
            return (
                f"clipping: {who} clips both arguments to [{eps:g}, 1] (a zero counts as {eps:g}, nothing is "
                f"infinite): {change}"
            )
        return (
            f"zeros: A gives p=0<q {ca.zero_p}, p=q=0 {ca.zero_both}, q=0<p {ca.zero_q}; B gives {cb.zero_p}, "
            f"{cb.zero_both}, {cb.zero_q}: {change}"
        )
    return f"{name}: {change} (the same distributions read through {a.label}'s and {b.label}'s input spaces, rounded)"


def _reduction_text(a: Side, b: Side, before: np.ndarray, after: np.ndarray, case: Case) -> str:
    shape = case.shape
    ea, ta = _divisor(a.candidate, shape)
    eb, tb = _divisor(b.candidate, shape)
    da, db = ea[1], eb[1]
    head = f"A ({_option_words(a)}) {ta}; B ({_option_words(b)}) {tb}"
    if before.shape == after.shape == () and da and db and np.isfinite(after) and np.isfinite(before) and before != 0:
        return f"factor {float(after / before):.3f} = {ea[0]}/{eb[0]} = {_num(da)}/{_num(db)}: {head}"
    return f"reduction: {head}: {_show(before)} -> {_show(after)}"


def _option_words(s: Side) -> str:
    if "reduction" in s.options:
        return f"reduction={s.options['reduction']}"
    return f"reduction {s.candidate.reduction}"


def _divisor(c: Candidate, shape: tuple) -> tuple[tuple[str, float | None], str]:
    """((symbol, number), words) of what `c` divides the summed terms by on input of `shape`."""
    names = {1: ["C"], 2: ["B", "C"], 3: ["B", "T", "C"]}.get(len(shape), [f"d{i}" for i in range(len(shape))])
    symbols = dict(zip(names, shape))
    rows = names[:-1]
    rows_sym = "·".join(rows) if rows else "1"
    rows_n = int(np.prod([symbols[n] for n in rows])) if rows else 1
    all_sym, all_n = "·".join(names), int(np.prod(shape))
    r = c.reduction
    if r == "none":
        return ("1", None), "returns every elementwise term"
    if r == "per_row":
        return ("1", None), "sums over classes and returns one value per row (no batch reduction)"
    if r == "sum":
        return ("1", 1), "sums every term (no division)"
    if r == "mean_all":
        return (all_sym, all_n), f"divides the summed terms by every element ({all_sym} = {_product(names, symbols)})"
    if r == "mean_batch":
        if c.batch_divisor == "rows" or (c.batch_divisor == "batch" and len(shape) == 1):
            return (rows_sym, rows_n), f"sums over classes and averages over the batch (÷ {rows_sym} = {rows_n})"
        first = names[0]
        return (first, shape[0]), f"sums every term and divides by dim 0 (÷ {first} = {shape[0]})"
    if r == "mean_weighted":
        return ("Σw", None), "divides the weighted sum by the sum of the weights"
    return (r, None), r


def _product(names, symbols) -> str:
    values = [symbols[n] for n in names]
    text = "·".join(str(v) for v in values)
    return f"{text} = {int(np.prod(values))}" if len(values) > 1 else text


def _num(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _describe(s: Side) -> str:
    from .inference import describe

    return describe(s.candidate, s.inference.arguments, bool(s.options.get("sample_weight")))


def _show(values) -> str:
    arr = np.asarray(values, np.float64)
    if arr.ndim == 0:
        return f"{float(arr):.10g}"
    flat = ", ".join(f"{x:.10g}" for x in arr.ravel()[:8])
    return f"[{flat}{', ...' if arr.size > 8 else ''}] (shape {list(arr.shape)})"
