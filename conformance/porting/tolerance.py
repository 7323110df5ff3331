"""The sizes the judge's tolerance needs, for a port's comparison, in float64.

Comparing a port with its source, the expected value is what the source returned; the oracle
is needed only for the sizes `judge.tolerance` reads off an `oracle.Expectation`: the
magnitude of what flowed into each output element, the number of terms summed, and the
logs' scale. The oracle computes those sizes in float64 from its exact values; here they are
computed the same way from the fed values directly, which takes milliseconds where mpmath
takes about 15 s per convention on the corpus's 500,000-term cases. `tests/test_porting.py`
holds these sizes to the oracle's own.
"""

from __future__ import annotations

import numpy as np

from .. import oracle
from ..inference.candidates import Candidate


def sizes(c: Candidate, args: tuple[np.ndarray, np.ndarray], weights: np.ndarray | None) -> oracle.Expectation | None:
    """`c.predict(args, weights)` without its value (NaN): the oracle's magnitude, terms and log_scale,
    classes last. None where the candidate cannot take these inputs."""
    ndim = args[0].ndim
    axis = c.axis(ndim)
    if c.weighted and weights is not None and axis is not None and axis != ndim - 1:
        return None
    p, q = (np.asarray(a, np.float64) for a in (args[c.p_index], args[1 - c.p_index]))
    if axis is not None and axis != ndim - 1:
        p, q = np.moveaxis(p, axis, -1), np.moveaxis(q, axis, -1)
    spec = c.spec(ndim)
    with np.errstate(all="ignore"):
        p_prob, p_log, p_scale = _side(p, spec.p_space, spec.clip_epsilon, spec.normalize)
        q_prob, q_log, q_scale = _side(q, spec.q_space, spec.clip_epsilon, spec.normalize)
        scale = np.abs(p_log) + np.abs(q_log) + 1.0 + p_scale + q_scale
        magnitude = np.abs(p_prob) * scale
        if spec.elementwise == "p*log(p/q)-p+q":
            magnitude = magnitude + np.abs(p_prob) + np.abs(q_prob)
    magnitude, scale = _finite(magnitude), _finite(scale)
    nan = np.full(np.shape(magnitude) if spec.reduction == "none" else (), np.nan)
    if spec.reduction == "none":
        return oracle.Expectation(nan, magnitude, 1, scale)
    shape = magnitude.shape
    row_shape, classes = shape[:-1], shape[-1]
    w = (
        np.ones(row_shape)
        if weights is None or not c.weighted
        else np.broadcast_to(np.asarray(weights, np.float64), row_shape)
    )
    row_magnitude = magnitude.sum(axis=-1) * w
    row_scale = scale.sum(axis=-1)
    if spec.reduction == "per_row":
        return oracle.Expectation(np.full(row_shape, np.nan), row_magnitude, classes, row_scale)
    rows = int(np.prod(row_shape, dtype=np.int64))
    divisor = {
        "sum": 1,
        "mean_all": rows * classes,
        "mean_weighted": float(np.sum(w)),
        "mean_batch": {"dim0": shape[0], "rows": rows, "batch": shape[0] if len(shape) > 1 else 1}[spec.batch_divisor],
    }[spec.reduction]
    d = float(divisor) if divisor != 0 else np.inf
    return oracle.Expectation(
        nan, np.asarray(float(row_magnitude.sum()) / d), rows * classes, float(row_scale.sum()) / d
    )


def _side(fed: np.ndarray, space: str, clip: float | None, normalize: bool):
    """(probabilities, their logs, the logits' scale) of one argument, as the oracle's _Side reads it."""
    logits_scale = 0.0
    if space == "prob":
        prob = np.where(np.isnan(fed), fed, np.clip(fed, clip, 1.0)) if clip is not None else fed
        log = np.where(prob < 0, np.nan, np.log(np.abs(prob)))
    elif space == "log_prob":
        log, prob = fed, np.exp(fed)
    else:
        log = _log_softmax(fed)
        prob = np.exp(log)
        if fed.size:
            logits_scale = np.nanmax(np.abs(np.where(np.isfinite(fed), fed, np.nan)), axis=-1, keepdims=True)
    if clip is not None and space != "prob":
        prob = np.where(np.isnan(prob), prob, np.clip(prob, clip, 1.0))
        log = np.log(prob)
    if normalize:
        prob = prob / np.sum(prob, axis=-1, keepdims=True)
        log = np.where(prob < 0, np.nan, np.log(np.abs(prob)))
    return prob, log, logits_scale


def _log_softmax(x: np.ndarray) -> np.ndarray:
    """Rows with a NaN or +inf, or no finite value, are NaN (as the oracle's)."""
    finite = np.isfinite(x)
    top = np.max(np.where(finite, x, -np.inf), axis=-1, keepdims=True) if x.size else np.zeros(x.shape[:-1] + (1,))
    bad = ~np.any(finite, axis=-1, keepdims=True) | np.any(np.isnan(x) | (x == np.inf), axis=-1, keepdims=True)
    shifted = x - np.where(np.isfinite(top), top, 0.0)
    out = shifted - np.log(np.sum(np.where(finite, np.exp(shifted), 0.0), axis=-1, keepdims=True))
    return np.where(bad, np.nan, out)


def _finite(a: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(a), a, 0.0)
