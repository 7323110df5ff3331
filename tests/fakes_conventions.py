"""NumPy KL implementations with known conventions, as black boxes for convention inference.

`make(name, **convention)` builds an `Api(framework="numpy")` whose call computes KL(P||Q)
the way the given fields say, in NumPy, with no help from the oracle: inference must
recover every field from its outputs. `declared=` sets what the Api declares (by default
the truth), so a declaration that differs from the computation can be planted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conformance.conventions import Convention
from conformance.frameworks import Api

ARGS = ("first", "second")


@dataclass(frozen=True)
class Truth:
    p_index: int = 1
    spaces: tuple = ("log_prob", "prob")
    elementwise: str = "p*log(p/q)"
    reduction: str = "mean_batch"  # none, per_row, sum, mean_all, mean_batch, mean_weighted
    batch_divisor: str = "dim0"  # mean_batch: dim0, rows, batch; mean_weighted: weights, batch (1-D undivided)
    class_axis: int | None = -1
    normalizes: bool = False
    clip: float | None = None
    zero_p: str = "0"
    zero_both: str = "0"
    zero_q: str = "inf"
    uses_weights: bool = True
    output: str | None = None  # output dtype; None: the input's
    accumulate: str = "float64"  # or "input": a running sum in the input dtype, one class at a time
    misfit: str | None = None  # outside every candidate: "log2" (log base 2), "clip_p_only" (q is never clipped)

    def convention(self) -> Convention:
        return Convention(
            arguments=ARGS,
            p_argument=ARGS[self.p_index],
            input_space=self.spaces,
            reduction=self.reduction,
            elementwise=self.elementwise,
            class_axis=self.class_axis,
            batch_divisor=self.batch_divisor if self.batch_divisor in ("dim0", "rows", "batch") else "dim0",
            clip_epsilon=self.clip,
            normalizes=self.normalizes,
            zero_p=self.zero_p,
            zero_both=self.zero_both,
            zero_q="inf" if self.zero_q == "finite" else self.zero_q,
        )


def _axis(class_axis, ndim):
    if class_axis is None or ndim <= 1:
        return None if class_axis is None else 0
    return {-1: ndim - 1, 0: 0, 1: 1}[class_axis]


def _to_prob(x, space):
    """(probabilities, their logs) of one argument, classes last."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if space == "prob":
            return x, np.log(x)
        if space == "log_prob":
            return np.exp(x), x
        top = np.max(np.where(np.isfinite(x), x, -np.inf), axis=-1, keepdims=True)
        shifted = x - top
        log_p = shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))
        return np.exp(log_p), log_p


def compute(t: Truth, a, b, weights):
    in_dtype = np.asarray(a).dtype
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    axis = _axis(t.class_axis, a.ndim)
    if axis is not None and axis != a.ndim - 1:
        a, b = np.moveaxis(a, axis, -1), np.moveaxis(b, axis, -1)
    p, log_p = _to_prob((a, b)[t.p_index], t.spaces[t.p_index])
    q, log_q = _to_prob((a, b)[1 - t.p_index], t.spaces[1 - t.p_index])
    with np.errstate(divide="ignore", invalid="ignore"):
        if t.clip is not None:
            p = np.clip(p, t.clip, 1.0)
            q = q if t.misfit == "clip_p_only" else np.clip(q, t.clip, 1.0)
            log_p, log_q = np.log(p), np.log(q)
        if t.normalizes:
            p, q = p / p.sum(-1, keepdims=True), q / q.sum(-1, keepdims=True)
            log_p, log_q = np.log(p), np.log(q)
        ratio = (log_p - log_q) if t.misfit != "log2" else (log_p - log_q) / np.log(2)
        safe = np.where((p > 0) & (q > 0), p * ratio, 0.0)
        terms = np.where(
            p == 0, np.where(q == 0, _value(t.zero_both), _value(t.zero_p)), np.where(q == 0, _value(t.zero_q), safe)
        )
        if t.elementwise == "p*log(p/q)-p+q":
            terms = terms - p + q
    out = _reduce(t, terms, weights if t.uses_weights else None, in_dtype)
    if t.reduction == "none" and axis is not None and axis != np.ndim(out) - 1 and np.ndim(out) == a.ndim:
        out = np.moveaxis(out, -1, axis)
    return np.asarray(out).astype(t.output or in_dtype)


def _value(kind):
    # "1": a zero convention no candidate has; "finite": clipping keeps zeros away, the value is never used
    return {"0": 0.0, "nan": np.nan, "inf": np.inf, "1": 1.0, "finite": 0.0}[kind]


def _row_sums(t: Truth, terms, in_dtype):
    if t.accumulate == "input":  # one running sum in the input dtype
        flat = terms.astype(in_dtype).reshape(-1, terms.shape[-1])
        return np.array([np.cumsum(row, dtype=in_dtype)[-1] for row in flat], np.float64).reshape(terms.shape[:-1])
    return terms.sum(-1)


def _reduce(t: Truth, terms, weights, in_dtype):
    if t.reduction == "none":
        return terms
    rows = _row_sums(t, terms, in_dtype)
    if weights is not None:
        rows = rows * np.asarray(weights, np.float64)
    if t.reduction == "per_row":
        return rows
    total = rows.sum()
    if t.reduction == "sum":
        return total
    if t.reduction == "mean_all":
        return total / terms.size
    if t.reduction == "mean_weighted":
        if t.batch_divisor == "batch" and terms.ndim == 1:
            return total
        return total / (np.sum(weights) if weights is not None else rows.size)
    return (
        total
        / {
            "dim0": terms.shape[0] if terms.ndim > 1 else terms.shape[0],
            "rows": rows.size,
            "batch": terms.shape[0] if terms.ndim > 1 else 1,
        }[t.batch_divisor]
    )


def make(
    name: str, declared: Truth | None = None, options: tuple = ({},), dtypes=("float16", "float32", "float64"), **truth
) -> Api:
    t = Truth(**truth)
    shown = declared or t
    return Api(
        name=name,
        framework="numpy",
        call=lambda fw, a, b, o, w: compute(t, a, b, w),
        convention=lambda o: shown.convention(),
        options=options,
        dtypes=dtypes,
        devices=("cpu",),
    )


TORCH_MEAN = make("fake.kl_div_mean", reduction="mean_all", class_axis=None)
CE_MEAN = make(
    "fake.cross_entropy_mean",
    p_index=1,
    spaces=("logits", "prob"),
    reduction="mean_batch",
    batch_divisor="rows",
    class_axis=1,
)
DECLARES_BATCHMEAN = make(
    "fake.declares_batchmean",
    declared=Truth(reduction="mean_batch", class_axis=-1),
    reduction="mean_all",
    class_axis=None,
)
MISFIT = make("fake.log2", misfit="log2")


def plugin_apis():
    """What `--api tests.fakes_conventions:plugin_apis` loads."""
    return [TORCH_MEAN, CE_MEAN, DECLARES_BATCHMEAN]
