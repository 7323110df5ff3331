"""Does an API accumulate float16/bfloat16 terms in a wider format?

Random positive terms cannot tell: a float16 sum of them, pairwise or in vector lanes,
stays within about one ulp, and the error of the terms themselves (a log_softmax over
4096 classes, a difference of two rounded products) is often larger than that. So the
probe is a pair of rows holding the same terms in two orders: 16 large terms (one per
vector lane of common kernels) followed by thousands of terms each under half an ulp of
a large one, and the same row reversed. Both have the same exact value. A running sum in
the input format loses the small terms in the first order and keeps them in the second;
a wider accumulator rounds nearly the same sum for both (at most one ulp apart), whatever
its terms' own errors. The simulation of 16 lanes in the input format checks that the
probe separates the two (TensorFlow's float16 reduce_sum, blocked, loses about 7 ulp).
"""

from __future__ import annotations

import numpy as np

from .. import oracle
from ..dtypes import FORMATS, round_to
from .candidates import NA, UNKNOWN, Candidate
from .probes import Layout, Observation, Probe, show

CLASSES = 4096
BIG = 16  # large terms at the start of the row: one per lane for up to 16 lanes
LANES = 16


def probes(final: Candidate, layout: Layout, dtype: str, weights: bool) -> tuple[Probe, Probe]:
    """(large terms first, small terms first): one row each; where softmax or normalisation would
    rescale a row, P and Q are normalised so that the API reads the intended terms."""
    rng = np.random.default_rng(11)
    p = np.concatenate([np.full(BIG, 0.9), rng.uniform(0.008, 0.012, CLASSES - BIG - 1), [0.01]])
    total = p.sum()
    big_term = _term(0.9 / total, 0.3 / total, final.elementwise)
    small = 0.2 * float(FORMATS[dtype].ulp(big_term)) * rng.uniform(0.7, 1.3, CLASSES - BIG - 1)
    q = np.empty_like(p)
    q[:BIG] = 0.3
    q[BIG:-1] = p[BIG:-1] * _ratio_for(small * total / p[BIG:-1], final.elementwise)
    if "logits" in final.spaces or final.normalizes:
        q[-1] = total - q[:-1].sum()  # a filler class makes sum(q) = sum(p): softmax and normalising keep q
    else:
        q[-1] = p[-1] * _ratio_for(np.array([small[-1] * total / p[-1]]), final.elementwise)[0]
    p, q = (p / total)[None, :], (q / total)[None, :]
    out = []
    for order, sl in (("large first", slice(None)), ("small first", slice(None, None, -1))):
        args, w = layout.feed(p[:, sl], q[:, sl], dtype, weights)
        out.append(
            Probe(
                f"accumulation[1x{CLASSES}, {order}] {dtype}",
                f"{BIG} large terms and {CLASSES - BIG - 1} under half an ulp of one, {order}",
                args,
                dtype,
                w,
            )
        )
    return out[0], out[1]


def _term(p, q, elementwise):
    t = p * np.log(p / q)
    return t - p + q if elementwise == "p*log(p/q)-p+q" else t


def _ratio_for(target, elementwise):
    """r in (0, 1) with f(r) = target, f(r) = -log r (plain) or -log r - 1 + r (generalised): q = p r."""
    lo, hi = np.full_like(target, 1e-12), np.ones_like(target)
    for _ in range(80):
        mid = (lo + hi) / 2
        f = -np.log(mid) - (1 - mid if elementwise == "p*log(p/q)-p+q" else 0.0)
        lo, hi = np.where(f > target, mid, lo), np.where(f > target, hi, mid)
    return (lo + hi) / 2


def judge(
    final: Candidate, pair: tuple[Probe, Probe], obs: tuple[Observation, Observation], dtype: str
) -> tuple[str, str]:
    """('higher' | 'input' | 'unknown' | 'n/a', evidence)."""
    if final.reduction == "none":
        return NA, "elementwise output: nothing is accumulated"
    errors = [o.error for o in obs if o.error]
    if errors:
        return UNKNOWN, f"the accumulation probe raised {errors[0]}"
    predicted = final.predict(pair[0].args, pair[0].weights)
    if predicted is None:
        return UNKNOWN, "the inferred convention cannot take the accumulation probe's inputs"
    exact = np.asarray(predicted[0].value, np.float64)
    big_first, small_first = (np.asarray(o.value, np.float64) for o in obs)
    if (
        big_first.shape != exact.shape
        or small_first.shape != exact.shape
        or not (np.all(np.isfinite(big_first)) and np.all(np.isfinite(small_first)))
    ):
        return (
            UNKNOWN,
            f"accumulation probe: observed {show(big_first)} and {show(small_first)}, expected {show(exact)}",
        )
    ulp = FORMATS[dtype].ulp(exact)
    spread = float(np.max(np.abs(big_first - small_first) / ulp))
    error = float(np.max(np.abs(big_first - exact) / ulp))
    sim_big, sim_small = (_lanes(final, pr, dtype, exact) for pr in pair)
    sim_spread = float(np.max(np.abs(sim_big - sim_small) / ulp))
    text = (
        f"{pair[0].describe()} and reversed: the two orders differ by {spread:.3g} ulp of {dtype} "
        f"(error against the oracle {error:.3g} ulp); a sum in {LANES} {dtype} lanes would differ by "
        f"{sim_spread:.3g} ulp"
    )
    if sim_spread < 16:
        return UNKNOWN, text + " (the probe cannot separate the two)"
    if spread <= 1.5:  # a wide accumulator rounds nearly the same sum: at most one ulp apart
        return "higher", text + f" (a pairwise {dtype} sum would stay as close)"
    if spread >= 3:
        return "input", text
    return UNKNOWN, text


def _lanes(final: Candidate, pr: Probe, dtype: str, exact: np.ndarray) -> np.ndarray:
    """The output if the exact terms were rounded to `dtype` and summed in lanes of `dtype`."""
    axis = final.axis(pr.args[0].ndim)
    p, q = pr.args[final.p_index], pr.args[1 - final.p_index]
    if axis is not None and axis != p.ndim - 1:
        p, q = np.moveaxis(p, axis, -1), np.moveaxis(q, axis, -1)
    terms = oracle.expected(
        np.ascontiguousarray(p), np.ascontiguousarray(q), final.replace(reduction="none").spec()
    ).value
    total = float(np.sum(terms))
    scale = float(np.sum(exact)) / total if total else 1.0  # what the reduction multiplies by (1/count, weight)
    rounded = round_to(terms, dtype).astype(np.float64).reshape(-1, terms.shape[-1])
    rows = _lane_sums(rounded, dtype)
    out = rows * scale if exact.shape else rows.sum() * scale
    return round_to(np.asarray(out), dtype).astype(np.float64).reshape(exact.shape)


def _lane_sums(rows: np.ndarray, dtype: str) -> np.ndarray:
    """Each row summed in LANES accumulators of `dtype` (element i into lane i % LANES, rounded at every
    addition), then the lanes added pairwise. A block of LANES consecutive elements adds one element to each
    lane, so the rows and the lanes advance together, one rounding per block instead of one per element."""
    n_rows, n = rows.shape
    lanes = np.zeros((n_rows, LANES))
    for start in range(0, n, LANES):
        block = rows[:, start : start + LANES]
        width = block.shape[1]
        lanes[:, :width] = round_to(lanes[:, :width] + block, dtype).astype(np.float64)
    while lanes.shape[1] > 1:
        lanes = round_to(lanes[:, 0::2] + lanes[:, 1::2], dtype).astype(np.float64)
    return lanes[:, 0]
