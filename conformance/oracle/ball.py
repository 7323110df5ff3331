"""The oracle's second stage: elements recomputed in `arb` ball arithmetic until their bound is met.

Only the output elements whose double-word bound is larger than asked come here (in practice: values
at float64's subnormal floor, or chains that overflowed). Each is recomputed from the rows that feed
it at rising precision; a ball's radius, plus the distance from its midpoint to the stored float64
pair, is the bound. Special values are the same exact decisions as the vectorized stage (`kl`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import numpy as np

from . import kl

try:
    import flint
    from flint import arb, ctx

    HAVE_FLINT = True
except ImportError:  # an image without python-flint keeps the double-word bounds, unrefined
    HAVE_FLINT = False

PRECISIONS = (128, 256, 512, 1024, 2048, 4096, 8192, 16384)  # bits; the first is already ~2^-128 relative
_FLOAT_LIMIT = arb(2) ** 1024 - arb(2) ** 970 if HAVE_FLINT else None  # from here on, round-to-nearest gives inf
UNAVAILABLE = "no arb refinement (python-flint is not installed)"
SUBNORMAL = 2.0**-1074  # float64's least subnormal: no bound of a float64 pair below it but 0


def version() -> str:
    return flint.__version__ if HAVE_FLINT else "not installed"


@contextmanager
def precision(bits: int):
    old = ctx.prec
    ctx.prec = bits
    try:
        yield
    finally:
        ctx.prec = old


def to_float(x) -> tuple[float, float, float, bool]:
    """(value, low, bound, final) of a ball or of an exact special float (bound 0). `final`: the
    bound is float64's own resolution of value + low, which more precision cannot shrink."""
    if isinstance(x, float):
        return x, 0.0, 0.0, True
    if not x.is_finite():
        return math.nan, 0.0, math.inf, False
    if x.abs_lower() >= _FLOAT_LIMIT:
        return math.copysign(math.inf, float(x.mid())), 0.0, 0.0, True
    if x.abs_upper() >= _FLOAT_LIMIT:
        return float(x.mid()), 0.0, math.inf, False
    hi = float(x.mid())
    return (hi, *pair_with(x, hi))


def pair_with(x, hi: float) -> tuple[float, float, bool]:
    """(low, bound, final) of the finite ball `x` stored as hi + low for a given float64 `hi` (its
    midpoint rounded, or a value computed elsewhere that the ball holds): low is what hi misses of the
    midpoint, rounded, and the bound covers what hi + low still misses plus the radius."""
    mid = x.mid()
    lo = float(mid - hi)
    representation = (mid - hi - lo).abs_upper()  # what value + low cannot hold of the midpoint
    bound = _float_above(representation + x.rad())
    # final: more precision cannot shrink the float64 bound, the radius being below what the pair misses or
    # the bound at float64's floor (a ball about an exact 0 that arb cannot prove shrinks, never reaches it)
    return lo, bound, x.rad() <= representation or bound <= SUBNORMAL


def _float_above(x) -> float:
    """The least float64 at or above the (non-negative) ball `x`'s upper end: a bound rounded up, with
    nothing added. An exact ball whose midpoint value + low holds (an exact zero, say) has bound 0, and
    at float64's floor a bound is one subnormal, not a padded few."""
    upper = x.abs_upper()
    bound = float(upper)
    return math.nextafter(bound, math.inf) if arb(bound) < upper else bound


def label(bits: int, count: int, total: int) -> str:
    return f"arb (python-flint {version()}) at up to {bits} bits for {count} of {total} elements"


# --------------------------------------------------------------------------- one row, in arb


def _side_row(fed: np.ndarray, space: str, clip: float | None, normalize: bool) -> tuple[list, list]:
    """(p, log p) of one row as balls; None where the flags decide the value."""
    before = kl.flags(fed, space, clip, False)
    raw = kl.flags(fed, space, None, False)
    n = fed.shape[-1]
    p: list = [None] * n
    log: list = [None] * n
    if space == "prob":
        x = kl.clipped_prob(fed, clip)
        for i in np.flatnonzero(before.regular):
            p[i] = arb(float(x[i]))
            log[i] = p[i].log()
    elif space == "log_prob":
        for i in np.flatnonzero(raw.regular):
            log[i] = arb(float(fed[i]))
            p[i] = log[i].exp()
    elif n and not raw.nan.any():
        live = np.flatnonzero(raw.regular)
        t = int(live[np.argmax(fed[live])])
        top = arb(float(fed[t]))
        d = {int(i): arb(float(fed[i])) - top for i in live}
        mass = sum((d[i].exp() for i in d if i != t), arb(0))
        lse = mass.log1p()
        for k, dk in d.items():
            log[k] = -lse if k == t else dk - lse
            p[k] = log[k].exp()
    if clip is not None and space != "prob":
        c = arb(clip)
        for i in np.flatnonzero(~raw.nan):
            if fed[i] == -np.inf:
                p[i] = c
            elif fed[i] == np.inf:
                p[i] = arb(1)
            else:
                p[i] = p[i].max(c).min(arb(1))
            log[i] = p[i].log()
    if normalize:
        after = kl.flags(fed, space, clip, True)
        mass = sum((p[i] for i in np.flatnonzero(before.regular)), arb(0))
        for k in range(n):
            p[k] = p[k] / mass if after.regular[k] else None
            log[k] = p[k].log() if after.regular[k] else None
    return p, log


def _row_terms(p_row, q_row, spec, specials) -> list:
    special, value, plus_q = specials
    p, lp = _side_row(p_row, spec.p_space, spec.clip_epsilon, spec.normalize)
    q, lq = _side_row(q_row, spec.q_space, spec.clip_epsilon, spec.normalize)
    generalized = spec.elementwise == "p*log(p/q)-p+q"
    out: list = []
    for i in range(len(p_row)):
        if plus_q[i] and not math.isnan(value[i]):
            out.append(q[i])
        elif special[i]:
            out.append(float(value[i]))
        else:
            t = p[i] * (lp[i] - lq[i])
            out.append(t - p[i] + q[i] if generalized else t)
    return out


def _total(items) -> Any:
    """Sum with IEEE rules for the exact specials (floats), balls otherwise."""
    items = list(items)
    specials = sum(x for x in items if isinstance(x, float))
    if specials != 0 or math.isnan(specials):
        return float(specials)
    return sum((x for x in items if not isinstance(x, float)), arb(0))


def _times(x, w: float):
    return x * w if isinstance(x, float) else x * arb(w)


# --------------------------------------------------------------------------- refining expectations


def refine(hit, need: np.ndarray, p_fed, q_fed, spec, weights):
    """`hit` with every element whose bound exceeds `need` recomputed in arb."""
    value, low, bound = (
        np.array(np.broadcast_to(a, np.shape(hit.value)), np.float64) for a in (hit.value, hit.low, hit.bound)
    )
    todo = [tuple(int(i) for i in ix) for ix in np.argwhere(bound > need)]
    if not todo:
        return hit
    if not HAVE_FLINT:
        return replace(hit, provenance=f"{hit.provenance}; {UNAVAILABLE}", refine=None)
    pf = kl.flags(p_fed, spec.p_space, spec.clip_epsilon, spec.normalize)
    qf = kl.flags(q_fed, spec.q_space, spec.clip_epsilon, spec.normalize)
    specials = kl.term_specials(pf, qf, spec, spec.elementwise == "p*log(p/q)-p+q", kl.same_terms(p_fed, q_fed, spec))
    shape = p_fed.shape
    used = 0
    for index in todo:
        for bits in PRECISIONS:
            with precision(bits):
                *result, final = to_float(_element(index, p_fed, q_fed, spec, weights, specials, shape))
            used = max(used, bits)
            if result[2] <= need[index] or final:
                break
        if result[2] < bound[index] or math.isnan(result[0]) != math.isnan(value[index]):
            value[index], low[index], bound[index] = result
    provenance = f"{hit.provenance}; {label(used, len(todo), value.size)}"
    return replace(hit, value=value, low=low, bound=bound, provenance=provenance, refine=None)


def _element(index: tuple, p_fed, q_fed, spec, weights, specials, shape):
    def row_terms(r: tuple) -> list:
        return _row_terms(p_fed[r], q_fed[r], spec, tuple(a[r] for a in specials))

    def weight(r: tuple) -> float:
        return 1.0 if weights is None else float(np.broadcast_to(weights, shape[:-1])[r])

    if spec.reduction == "none":
        return row_terms(index[:-1])[index[-1]]
    if spec.reduction == "per_row":
        return _times(_total(row_terms(index)), weight(index))
    rows = list(np.ndindex(*shape[:-1]))
    whole = _total(_times(_total(row_terms(r)), weight(r)) for r in rows)
    if spec.reduction == "mean_weighted":
        divisor = sum((arb(weight(r)) for r in rows), arb(0))
    else:
        n_rows, classes = len(rows), shape[-1]
        divisor = arb(
            {
                "sum": 1,
                "mean_all": n_rows * classes,
                "mean_batch": {"dim0": shape[0], "rows": n_rows, "batch": shape[0] if len(shape) > 1 else 1}.get(
                    spec.batch_divisor, 1
                ),
            }[spec.reduction]
        )
    if divisor.is_zero():
        return math.nan
    if isinstance(whole, float):
        return whole / float(divisor.mid())
    return whole / divisor


# --------------------------------------------------------------------------- refining gradients


def refine_gradient(hit, unscaled, need: np.ndarray, p_fed, q_fed, spec, wrt: str, scale: Callable[[tuple], Any]):
    """The scaled analytic gradient `hit`, with every element whose bound exceeds `need` recomputed in arb:
    its unscaled derivative (`unscaled`'s value + low where that is exact, bound 0; else from its row,
    an overflow the double-word stage could not bound included) times its exact `scale`
    (`element_scale`). Scaling in arb too keeps no double-word floor: a derivative at float64's
    subnormal floor, or an exact zero over an inexact divisor, comes out as tight as float64 holds it."""
    value, low, bound = (
        np.array(np.broadcast_to(a, np.shape(hit.value)), np.float64) for a in (hit.value, hit.low, hit.bound)
    )
    todo = [tuple(int(i) for i in ix) for ix in np.argwhere(bound > need)]
    if not todo:
        return hit
    if not HAVE_FLINT:
        return replace(hit, provenance=f"{hit.provenance}; {UNAVAILABLE}", refine=None)
    exact_value, exact_low, exact_bound = (
        np.broadcast_to(a, np.shape(hit.value)) for a in (unscaled.value, unscaled.low, unscaled.bound)
    )
    generalized = spec.elementwise == "p*log(p/q)-p+q"
    space = spec.p_space if wrt == "p" else spec.q_space
    used = 0
    for index in todo:
        exact = exact_bound[index] == 0  # decided: value + low is the derivative itself
        if exact and not math.isfinite(exact_value[index]):
            continue  # a special value, decided exactly (its scaled bound is 0: never here in practice)
        r, j = index[:-1], index[-1]
        for bits in PRECISIONS:
            with precision(bits):
                if exact:
                    derivative = arb(float(exact_value[index])) + arb(float(exact_low[index]))
                else:
                    p, lp = _side_row(p_fed[r], spec.p_space, spec.clip_epsilon, False)
                    q, lq = _side_row(q_fed[r], spec.q_space, spec.clip_epsilon, False)
                    derivative = _derivative(p, lp, q, lq, j, space, wrt, generalized)
                *result, final = to_float(derivative * scale(index))
            used = max(used, bits)
            if result[2] <= need[index] or final:
                break
        if result[2] < bound[index]:
            value[index], low[index], bound[index] = result
    provenance = f"{hit.provenance}; {label(used, len(todo), value.size)}"
    return replace(hit, value=value, low=low, bound=bound, provenance=provenance, refine=None)


def element_scale(shape: tuple, spec, weights) -> Callable[[tuple], Any]:
    """One element's d(sum of outputs) / d(term) as a ball, at the precision it is called under: its row's
    weight over the reduction's divisor (derivatives._element_scale, exactly)."""
    row_shape = shape[:-1]
    w = np.ones(row_shape) if weights is None else np.broadcast_to(np.asarray(weights, np.float64), row_shape)
    n_rows, classes, r = int(np.prod(row_shape, dtype=np.int64)), shape[-1], spec.reduction
    totals: dict[int, Any] = {}  # precision -> the sum of the weights

    def scale(index: tuple):
        weight = arb(float(w[index[:-1]]))
        if r == "none":
            return arb(1)
        if r in ("per_row", "sum"):
            return weight
        if r == "mean_weighted":
            total = totals.get(ctx.prec)
            if total is None:  # once per precision, not once per element
                total = totals[ctx.prec] = sum((arb(float(x)) for x in w.reshape(-1)), arb(0))
            return weight if total.is_zero() else weight / total
        divisor = (
            n_rows * classes
            if r == "mean_all"
            else {"dim0": shape[0], "rows": n_rows, "batch": shape[0] if len(shape) > 1 else 1}[spec.batch_divisor]
        )
        return weight / arb(divisor) if divisor else weight

    return scale


def _derivative(p, lp, q, lq, j: int, space: str, wrt: str, generalized: bool):
    """One regular element's derivative (special elements never reach here: their bound is 0)."""

    def prob(x):
        return arb(0) if x is None else x

    if space == "logits":
        return prob(q[j]) * sum((prob(x) for x in p), arb(0)) - prob(p[j])
    if wrt == "q" and space == "prob":
        g = -p[j] / q[j]
        return g + 1 if generalized else g
    if wrt == "q":
        return q[j] - prob(p[j]) if generalized else -prob(p[j])
    inner = lp[j] - lq[j] + (0 if generalized else 1)
    return inner if space == "prob" else p[j] * inner
