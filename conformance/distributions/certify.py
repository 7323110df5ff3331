"""Certified closed forms: closed_forms' very formulas, evaluated again in arb ball arithmetic.

closed_forms evaluates a formula in mpmath at a working precision: accurate, but with no bound. Here
the same formulas run on python-flint's `arb` balls (closed_forms.arithmetic): each parameter is the
exact ball of its fed float64 value, each operation and special function (log, lgamma, digamma,
1F1, erf, ...) is rigorous, so the sum of the terms is a ball that holds the exact KL. Its midpoint,
stored as value + low (two float64), and |midpoint - value - low| + radius rounded up are the
expected value and its certified bound (oracle.ball.to_float, as for the tensor-level values).

Precision starts at 128 bits and rises for the elements whose bound the judge finds above a
thousandth of their tolerance (Expectation.refine). Branches of a formula decided by comparisons
(a support, a moment that exists only for t < rate) compare exact balls of the parameters; where a
ball could not decide what mpmath decided, the two disagree, and the expectation is left uncertified
with that reason rather than given a bound it does not have (tests/test_distributions_oracle.py
holds the corpus to no such element).
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import partial

import numpy as np

from ..oracle import Expectation, ball
from . import closed_forms

FIRST_BITS = 128
NONFINITE_BITS = 1024  # a ball still unbounded here is an undefined value, not a lack of precision

if ball.HAVE_FLINT:
    from flint import arb


def _ball(x):
    return x if isinstance(x, arb) else arb(x)


class _Arb:
    """mpmath's names for what the formulas use, on arb balls at flint's current precision."""

    inf = math.inf

    @staticmethod
    def mpf(x):
        return _ball(x)

    @staticmethod
    def log(x):
        return _ball(x).log()

    @staticmethod
    def loggamma(x):
        return _ball(x).lgamma()

    @staticmethod
    def digamma(x):
        return _ball(x).digamma()

    @staticmethod
    def exp(x):
        return _ball(x).exp()

    @staticmethod
    def sqrt(x):
        return _ball(x).sqrt()

    @staticmethod
    def atanh(x):
        return _ball(x).atanh()

    @staticmethod
    def gamma(x):
        return _ball(x).gamma()

    @staticmethod
    def erf(x):
        return _ball(x).erf()

    @staticmethod
    def hyp1f1(a, b, z):
        return _ball(z).hypgeom_1f1(_ball(a), _ball(b))

    @staticmethod
    def binomial(n, k):  # counts: exact integers
        return arb(math.comb(int(float(n)), int(float(k))))

    @staticmethod
    def fsum(terms):
        return sum((_ball(t) for t in terms), arb(0))

    @property
    def euler(self):
        return arb.const_euler()

    @property
    def pi(self):
        return arb.pi()


ARB = _Arb()


def certified(exp: Expectation, p_family: str, p_arrays: dict, q_family: str, q_arrays: dict, batch: tuple):
    """`exp` (closed_forms.evaluate's mpmath values, shaped `batch`) with value + low and a certified bound
    for every element from arb, and a `refine` that raises the precision where a bound must shrink; `exp`
    unchanged but for its provenance where python-flint is missing or arb and mpmath disagree."""
    if not ball.HAVE_FLINT:
        return replace(exp, provenance=f"{closed_forms.PROVENANCE}; {ball.UNAVAILABLE}")
    args = (p_family, p_arrays, q_family, q_arrays, batch)
    everything = np.ones(batch, bool)
    mp_values = np.asarray(exp.value, np.float64)
    value, low, bound, bits = _evaluate(args, mp_values, everything, np.full(batch, np.inf), np.full(batch, FIRST_BITS))
    disagree = _disagreements(mp_values, value, low, bound)
    if disagree:
        return replace(exp, provenance=f"{closed_forms.PROVENANCE}; uncertified: {disagree}")
    first = replace(exp, value=value, low=low, bound=bound, provenance=_provenance(bits))
    return replace(first, refine=partial(_refined, first, args, bits))


def _refined(hit: Expectation, args: tuple, bits: np.ndarray, need: np.ndarray) -> Expectation:
    """`hit` with the elements whose bound exceeds `need` evaluated again from twice their precision."""
    first = np.broadcast_to(np.asarray(hit.bound, np.float64), np.shape(hit.value))
    todo = first > need
    if not todo.any():
        return hit
    value, low, bound, used = _evaluate(args, np.asarray(hit.value), todo, need, bits * 2)
    better = todo & (bound < first)
    return replace(
        hit,
        value=np.where(better, value, hit.value),
        low=np.where(better, low, hit.low),
        bound=np.where(better, bound, first),
        provenance=_provenance(np.where(todo, used, bits)),
        refine=None,
    )


def _evaluate(args: tuple, stored: np.ndarray, todo: np.ndarray, need: np.ndarray, start: np.ndarray):
    """(value, low, bound, bits) of the elements in `todo` (value + low against mpmath's `stored` values where
    finite), each at rising precision from `start` bits until
    its bound is at most `need` (or float64's own floor, or the last precision). A ball that stays
    unbounded (an undefined KL, NaN in mpmath too) is given up at NONFINITE_BITS."""
    p_family, p_arrays, q_family, q_arrays, batch = args
    value, low = np.zeros(batch), np.zeros(batch)
    bound, used = np.full(batch, np.inf), np.zeros(batch, np.int64)
    for index in map(tuple, np.argwhere(todo)):
        bits = int(start[index])
        while True:
            with ball.precision(bits), closed_forms.arithmetic(ARB):
                p = closed_forms.element_params(p_family, p_arrays, batch, index)
                q = closed_forms.element_params(q_family, q_arrays, batch, index)
                terms = closed_forms.kl_terms(p_family, p, q_family, q)
                if any(t == closed_forms.INF for t in terms):
                    value[index], low[index], bound[index], final = math.inf, 0.0, 0.0, True
                else:
                    value[index], low[index], bound[index], final = _stored(ARB.fsum(terms), float(stored[index]))
            used[index] = bits
            unbounded = not math.isfinite(bound[index])
            if final or (not unbounded and bound[index] <= need[index]) or bits >= ball.PRECISIONS[-1]:
                break
            if unbounded and bits >= NONFINITE_BITS:
                break
            bits *= 2
    return value, low, bound, used


def _stored(x, mp_value: float) -> tuple[float, float, float, bool]:
    """(value, low, bound, final) of the ball `x`, stored against mpmath's float64 `mp_value` where both are
    finite (the expected values stay those mpmath gave; low carries what arb adds to them)."""
    value, low, bound, final = ball.to_float(x)
    if math.isfinite(value) and math.isfinite(mp_value):
        return (mp_value, *ball.pair_with(x, mp_value))
    return value, low, bound, final


def _disagreements(mp_values, value, low, bound) -> str:
    """Where mpmath's value (60 digits, rounded to float64) is neither within a float64 spacing of arb's ball
    nor inside it: a branch the two decided differently. "" for none."""
    with np.errstate(invalid="ignore", over="ignore"):
        same_special = (np.isnan(mp_values) & np.isnan(value)) | (np.isinf(mp_values) & (mp_values == value))
        close = (mp_values == value) & (np.abs(low) <= np.maximum(np.spacing(np.abs(value)), bound))
    off = ~(same_special | close)
    if not off.any():
        return ""
    index = tuple(int(i) for i in np.argwhere(off)[0])
    return (
        f"element {list(index)}: mpmath gives {float(mp_values[index])!r}, arb "
        f"{float(value[index])!r} + {float(low[index])!r} +- {float(bound[index]):.3g}"
    )


def _provenance(bits: np.ndarray) -> str:
    return (
        f"{closed_forms.PROVENANCE}; certified by the same formula in arb (python-flint {ball.version()}) "
        f"at up to {int(np.max(bits, initial=FIRST_BITS))} bits"
    )
