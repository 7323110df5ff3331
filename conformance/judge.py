"""Verdicts: observed values against the oracle, under tolerances derived from the dtype.

The tolerance of an output element is

    tol = (u(dtype) * M + eta(dtype) * S) * (C_ELEMENT + LAMBDA * sqrt(n)) * device factor * override factor

where u is the unit roundoff of the dtype the API was fed, M the sum of the magnitudes of
everything that flowed into the element (|p| (|log p| + |log q| + 1) per term, from the
oracle: the case's conditioning), and n the number of terms summed into it. eta is the
dtype's smallest subnormal and S the sum of (|log p| + |log q| + 1) over the terms: an
intermediate that underflows (exp of a very negative log-probability in float16, say)
carries an absolute error up to eta, which the term multiplies by its logs.
C_ELEMENT covers the rounding inside one term (log, subtract, multiply, output rounding);
LAMBDA * sqrt(n) is the probabilistic bound for summing n rounded terms in any order
(Higham and Mary, SIAM J. Sci. Comput. 41(5), 2019), which frameworks do not promise to
beat (XLA and Eigen reduce in vectorised chunks, not pairwise).

The oracle's own error is not part of the tolerance: before a verdict, the judge asks the oracle
to certify every element to within BOUND_SHARE of its tolerance (it refines in arb where its
first bound is looser), measures errors from value + low, and records the bound it judged with.
Only float64's own resolution can stay above the share: value + low of an element within a
subnormal or so of zero may miss it by half a subnormal, so its bound is one subnormal (an exact
result, a zero say, has bound 0); `details["bound_floor"]` counts such elements and
`details["uncertain"]` those whose verdict the bound could change, and a check's record keeps both
(`extra.bound_floor`, INTERPRETING.md).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from .dtypes import FORMATS, Format
from .oracle import Expectation

C_ELEMENT = 8.0
LAMBDA = 3.0
BOUND_SHARE = 1e-3  # no verdict is given with an oracle bound above this fraction of the tolerance
DEVICE_FACTOR = {
    "cpu": (1.0, ""),
    "cuda": (2.0, "CUDA log/exp are accurate to 2 ulp, not 1, and GPU reductions use other orders"),
}


@dataclass
class Judgement:
    verdict: str  # pass | fail
    kind: str | None = None  # failure kind: value | nan | inf | shape
    message: str = ""
    abs_error: float | None = None
    rel_error: float | None = None
    ulp_error: float | None = None
    tolerance: float | None = None  # at the worst element
    headroom: float | None = None  # worst error / tolerance (< 1 passes)
    worst_index: list[int] | None = None
    mismatches: int = 0
    details: dict = field(default_factory=dict)
    bound: float | None = None  # the expected value's certified bound where `tolerance` is taken (None: uncertified)
    certified: str = ""  # how the expected values were certified


def tolerance(exp: Expectation, dtype: str, device: str, override_factor: float = 1.0) -> np.ndarray:
    fmt = FORMATS[dtype]
    device_factor = DEVICE_FACTOR.get(device, (2.0, ""))[0]
    kappa = C_ELEMENT + LAMBDA * np.sqrt(max(exp.terms, 1))
    scale = fmt.unit_roundoff * np.asarray(exp.magnitude, np.float64) + fmt.smallest_subnormal * np.asarray(
        exp.log_scale, np.float64
    )
    return scale * kappa * device_factor * override_factor + fmt.smallest_subnormal


def judge(
    exp: Expectation,
    observed: np.ndarray,
    dtype: str,
    device: str,
    override_factor: float = 1.0,
    output_dtype: str | None = None,
) -> Judgement:
    """`output_dtype` (what the API returned) decides which values are representable: an exact value
    beyond its largest finite number is correctly returned as +-inf."""
    expected = representable(np.asarray(exp.value, np.float64), output_dtype or dtype)
    observed = np.asarray(observed, np.float64)
    tol = np.broadcast_to(tolerance(exp, dtype, device, override_factor), expected.shape)
    given = exp
    exp, bound, low = _certified(exp, tol)
    if observed.shape != expected.shape:  # no element to compare; the expected values' bound still stands
        return Judgement(
            "fail",
            "shape",
            f"output shape {list(observed.shape)}, expected {list(expected.shape)}",
            details={"observed_shape": list(observed.shape), "expected_shape": list(expected.shape)},
            bound=largest_bound(expected, bound),
            certified=exp.provenance,
        )
    if exp is not given:  # refined to the share: its values are sharper
        expected = representable(np.asarray(exp.value, np.float64), output_dtype or dtype)

    e_nan, o_nan = np.isnan(expected), np.isnan(observed)
    e_inf, o_inf = np.isinf(expected), np.isinf(observed)
    finite = ~(e_nan | o_nan | e_inf | o_inf)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        abs_err = np.where(finite, np.abs((observed - expected) - low), 0.0)
        rel_err = np.where(finite & (expected != 0), abs_err / np.abs(expected), np.where(abs_err > 0, np.inf, 0.0))
        ratio = np.where(finite, abs_err / tol, 0.0)
        ulp = np.where(finite, abs_err / FORMATS[dtype].ulp(expected), 0.0)

    wrong_nan = o_nan & ~e_nan
    wrong_inf = o_inf & ~e_inf & ~e_nan
    wrong_special = (e_nan & ~o_nan) | (e_inf & ~(o_inf & (np.sign(observed) == np.sign(expected))))
    wrong_value = finite & (ratio > 1.0)
    bad = wrong_nan | wrong_inf | wrong_special | wrong_value

    judgement = Judgement("pass", certified=exp.provenance)
    if bound is not None:
        judgement.bound = largest_bound(expected, bound)
        judgement.details["largest_bound"] = judgement.bound
        floor = finite & (bound > BOUND_SHARE * tol)
        if floor.any():
            judgement.details["bound_floor"] = int(floor.sum())
            # the exact error lies in abs_err +- bound: the verdict stands unless that straddles tol
            uncertain = floor & (abs_err + bound > tol) & (abs_err - bound <= tol)
            if uncertain.any():
                judgement.details["uncertain"] = int(uncertain.sum())
    if finite.any():
        judgement.abs_error = float(abs_err.max())
        judgement.rel_error = float(rel_err.max())
        judgement.ulp_error = float(ulp.max())
        worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape) if ratio.size else ()
        judgement.tolerance = float(tol[worst]) if ratio.size else None
        judgement.headroom = float(ratio[worst]) if ratio.size else None
        judgement.worst_index = [int(i) for i in worst]
        if bound is not None and ratio.size:  # beside the tolerance it is held to: at most 1/1000 of it
            judgement.bound = float(bound[worst])
    if not bad.any():
        return judgement

    judgement.verdict = "fail"
    judgement.mismatches = int(bad.sum())
    for mask, kind in ((wrong_nan, "nan"), (wrong_inf, "inf"), (wrong_special, "value"), (wrong_value, "value")):
        if mask.any():
            score = np.where(mask, ratio, -1.0) if mask is wrong_value else mask.astype(np.float64)
            index = tuple(int(i) for i in np.unravel_index(int(np.argmax(score)), mask.shape))
            judgement.kind = kind
            judgement.worst_index = [int(i) for i in index]
            judgement.message = _mismatch_message(
                kind, index, expected, observed, tol, judgement.mismatches, expected.size
            )
            break
    return judgement


def largest_bound(expected: np.ndarray, bound: np.ndarray | None) -> float | None:
    """The largest bound of a finite expected element: NaN and infinite ones are exact decisions (0 with no
    finite element, say an empty batch's NaN mean)."""
    if bound is None:
        return None
    return float(np.max(np.where(np.isfinite(expected), bound, 0.0), initial=0.0))


def _certified(exp: Expectation, tol: np.ndarray):
    """(expectation, bound, low) with every bound at most BOUND_SHARE of its tolerance where the oracle
    can certify that; (exp, None, 0) for an expectation that carries no bound."""
    if exp.bound is None:
        return exp, None, np.zeros(tol.shape)
    exp = exp.certified_to(BOUND_SHARE * tol)
    bound = np.broadcast_to(np.asarray(exp.bound, np.float64), tol.shape)
    low = np.broadcast_to(np.asarray(exp.low, np.float64), tol.shape)
    return exp, bound, np.where(np.isfinite(low), low, 0.0)


def representable(expected: np.ndarray, dtype: str) -> np.ndarray:
    """The exact values as that dtype can hold them: beyond its range they round to +-inf."""
    fmt = FORMATS.get(dtype)
    if fmt is None:
        return expected
    limit = _overflow_limit(fmt)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(expected) & (np.abs(expected) >= limit), np.copysign(np.inf, expected), expected)


@functools.cache
def _overflow_limit(fmt: Format) -> float:
    """Round-to-nearest overflows to inf from max + half an ulp of max onwards (for float64 that limit is
    itself beyond range: inf, and no float64 value reaches it). Once per format: the judge runs per check."""
    with np.errstate(over="ignore"):
        return float(np.float64(fmt.max) + fmt.ulp(np.float64(fmt.max)) / 2)


def _fmt(x: float) -> str:
    return f"{x:.9g}"


def _mismatch_message(kind, index, expected, observed, tol, count, size) -> str:
    where = f"at {list(index)}" if expected.ndim else "at the scalar output"
    e, o = float(expected[index]), float(observed[index])
    head = f"{count} of {size} values differ; {where}"
    if kind == "nan":
        return f"{head}: observed NaN where the value is {_fmt(e)}"
    if kind == "inf":
        return f"{head}: observed {_fmt(o)} where the value is finite ({_fmt(e)})"
    if np.isnan(e):
        return f"{head}: the value is undefined (NaN) but {_fmt(o)} was returned"
    if np.isinf(e):
        return f"{head}: the value is {_fmt(e)} but {_fmt(o)} was returned"
    diff = abs(o - e)
    rel = diff / abs(e) if e else float("inf")
    return (
        f"{head}: expected {_fmt(e)}, observed {_fmt(o)} (|diff| {diff:.3g}, rel {rel:.3g}, "
        f"ratio observed/expected {o / e if e else float('inf'):.6g}; tolerance {tol[index]:.3g})"
    )
