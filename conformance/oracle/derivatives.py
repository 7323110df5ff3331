"""Analytic gradients of the sum of a convention's outputs, certified like the values."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import numpy as np

from . import _RESULTS, DOUBLE_WORD, Expectation, Gradient, Spec, _certified, _finite, _floats, _sides, ball, cache, kl
from . import doubleword as dw


def analytic(p_fed: np.ndarray, q_fed: np.ndarray, spec: Spec, wrt: str, weights=None) -> Gradient:
    """The exact derivative of the sum of the outputs with respect to the argument carrying P
    (`wrt="p"`) or Q (`wrt="q"`), in that argument's own space.

    Where the derivative does not exist the limit is used: d/dp at p = 0 is -inf (log p), d/dq at
    q = 0 < p is -inf. A clipped value has derivative 0; at the clip bound itself the unclipped
    derivative applies (a clip passes the gradient through where the value equals the bound).
    The reduction scales each element's derivative by its row weight over the divisor, computed as a
    double-word quotient, so one evaluation of the elementwise derivatives serves every reduction;
    an element refined in arb is scaled there too (`ball.element_scale`).
    """
    if spec.normalize:
        raise ValueError("no analytic gradient for normalising conventions")
    p_fed, q_fed = np.asarray(p_fed, np.float64), np.asarray(q_fed, np.float64)
    g = _scaled(p_fed, q_fed, spec, wrt, weights)
    refine = partial(_refined_gradient, p_fed, q_fed, spec, wrt, weights)
    return Gradient(g.value, g.magnitude, g.terms, g.log_scale, g.low, g.bound, g.provenance, refine)


def _unscaled_spec(spec: Spec) -> Spec:
    return replace(spec, reduction="none", batch_divisor="dim0")


def _scaled(p_fed: np.ndarray, q_fed: np.ndarray, spec: Spec, wrt: str, weights) -> Expectation:
    """The elementwise derivatives (cached) times each element's scale, in double-word arithmetic."""
    unscaled = _unscaled_gradient(p_fed, q_fed, _unscaled_spec(spec), wrt)
    assert unscaled.bound is not None  # the oracle's own expectations always carry one
    factor = _element_scale(p_fed.shape, spec, weights)
    g = kl.scale(dw.Dw(unscaled.value, np.broadcast_to(unscaled.low, p_fed.shape), unscaled.bound), factor)
    value, low, bound = _certified(g)
    return Expectation(
        value,
        unscaled.magnitude * np.abs(factor.hi),
        unscaled.terms,
        unscaled.log_scale * np.abs(factor.hi),
        low,
        bound,
        unscaled.provenance,
    )


def _unscaled_gradient(p_fed: np.ndarray, q_fed: np.ndarray, spec: Spec, wrt: str) -> Expectation:
    key = cache.digest_text(cache.digest(p_fed, q_fed), repr(spec), f"gradient/{wrt}")
    hit = _RESULTS.get(key)
    if hit is not None:
        return hit
    shape = p_fed.shape
    space = spec.p_space if wrt == "p" else spec.q_space
    (p, lp, pf), (q, lq, qf) = _sides(p_fed, q_fed, spec)
    fed = p_fed if wrt == "p" else q_fed
    value, low, bound = _certified(kl.gradient(fed, p, lp, q, lq, pf, qf, spec, wrt))
    (p_float, lp_float), (q_float, lq_float) = _floats(p, lp, pf), _floats(q, lq, qf)
    generalized = spec.elementwise == "p*log(p/q)-p+q"
    pa, qa = np.abs(p_float), np.abs(q_float)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if space == "logits":
            magnitude = qa * pa.sum(axis=-1, keepdims=True) + pa
        elif wrt == "q":
            magnitude = (pa / qa if space == "prob" else pa) + (1.0 if space == "prob" else qa) * generalized
        else:
            magnitude = (np.abs(lp_float) + np.abs(lq_float) + 1.0) * (1.0 if space == "prob" else pa)
        log_scale = _finite(np.abs(lp_float) + np.abs(lq_float) + 1.0)
    hit = Expectation(
        value, _finite(magnitude), shape[-1] if space == "logits" else 1, log_scale, low, bound, DOUBLE_WORD
    )
    _RESULTS.put(key, hit, int(np.size(value)))
    return hit


def _element_scale(shape: tuple, spec: Spec, weights) -> dw.Dw:
    """d(sum of outputs) / d(term) for each element: the row weight over the reduction's divisor."""
    row_shape = shape[:-1]
    w = np.ones(row_shape) if weights is None else np.broadcast_to(np.asarray(weights, np.float64), row_shape)
    n_rows, classes = int(np.prod(row_shape, dtype=np.int64)), shape[-1]
    r = spec.reduction
    ones = dw.exact(np.ones(row_shape))
    if r == "none":
        per = ones
    elif r in ("per_row", "sum"):
        per = dw.exact(w)
    elif r == "mean_weighted":
        total = dw.total(dw.exact(w.reshape(-1)))
        per = dw.div(dw.exact(w), total) if total.hi != 0 else dw.exact(w)
    else:
        divisor = (
            n_rows * classes
            if r == "mean_all"
            else {"dim0": shape[0], "rows": n_rows, "batch": shape[0] if len(shape) > 1 else 1}[spec.batch_divisor]
        )
        per = dw.div(dw.exact(w), dw.exact(np.full(row_shape, float(divisor)))) if divisor else dw.exact(w)
    return dw.Dw(*(np.broadcast_to(np.asarray(a, np.float64)[..., None], shape) for a in per))


def _refined_gradient(p_fed, q_fed, spec: Spec, wrt: str, weights, need: np.ndarray) -> Expectation:
    """Recompute, in arb, the elements whose scaled bound exceeds `need` (derivative and scale alike)."""
    unscaled_spec = _unscaled_spec(spec)
    unscaled = _unscaled_gradient(p_fed, q_fed, unscaled_spec, wrt)
    scale = ball.element_scale(p_fed.shape, spec, weights)
    return ball.refine_gradient(
        _scaled(p_fed, q_fed, spec, wrt, weights), unscaled, need, p_fed, q_fed, unscaled_spec, wrt, scale
    )
