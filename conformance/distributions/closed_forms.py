"""Closed-form KL(P||Q) between distribution families, in mpmath at `oracle.DIGITS` digits (and the same
formulas on arb balls, which certify it: certify.py). This module resolves a pair and evaluates batches;
the formulas live in formulas.py (same family), moments.py (cross family) and supports.py (supports
and exact finite sums), all written through arithmetic.py's `M`.

Every formula returns the KL as a list of terms whose sum is the value: the terms' magnitudes
say how much cancellation a float implementation of the same formula faces, which sizes the
tolerances (see runner.py). A pair is resolved in this order:

1. aliases: chi2(df) is gamma(df/2, rate 1/2), mvn_diag is mvn_tril with a diagonal scale,
   one_hot_categorical is categorical (KL is the same; only the event encoding differs);
2. support: when the points where P puts mass are not all points where Q does, KL = +inf (uniform
   not nested, pareto with a smaller scale, binomial with more trials, a real-line P against a
   positive Q, ...). Supports are where the distribution actually puts mass, not its family's
   nominal range: Poisson(0), Bernoulli(0), Binomial(n, 0), Binomial(0, p) and Geometric(1) are the
   point mass at 0, Bernoulli(1) and Binomial(n, 1) the point mass at 1 and n. A zero-width
   Uniform (low = high) is the point mass at low: against anything but the same point mass its
   KL is +inf (it has no density with respect to Q), against that point mass 0;
3. a same-family formula (formulas.py; derivations in the docstrings);
4. for two univariate continuous families (moments.py), KL = -H(P) + H(P, Q), with the cross-entropy
   H(P, Q) = -E_P[log q(X)] written through moments of P (mean, variance, E log X,
   E log(1-X), E|X - c|, E exp(tX)); a pair is covered when P has the moments Q's log
   density needs;
5. for a discrete P with finite support (supports.py: Bernoulli, Binomial, and the point-mass members of
   Poisson and Geometric) against a discrete Q, the exact finite sum of p(k) log(p(k)/q(k)).

These modules never import a framework; klconf's tests check every formula against numeric.py's
quadrature.
"""

from __future__ import annotations

import mpmath
import numpy as np

from ..oracle import DIGITS
from .arithmetic import INF, M, NotCovered, Params, arithmetic
from .families import FAMILIES
from .formulas import SAME_FAMILY
from .moments import via_moments
from .supports import FINITE_SUM_LIMIT, finite_sum, support

PROVENANCE = f"mpmath {mpmath.__version__} closed form, {DIGITS} digits"
__all__ = [  # what other modules and the tests read from here
    "FAMILIES",
    "FINITE_SUM_LIMIT",
    "INF",
    "PROVENANCE",
    "NotCovered",
    "arithmetic",
    "covered",
    "element_params",
    "evaluate",
    "kl",
    "kl_terms",
    "support",
]


# --------------------------------------------------------------------------- aliases


def _alias(family: str, p: Params) -> tuple[str, Params]:
    """The family whose formulas serve this one, and the parameters in its terms."""
    if family == "chi2":
        return "gamma", {"concentration": p["df"] / 2, "rate": M.mpf(1) / 2}
    if family == "mvn_diag":
        d = p["scale_diag"]
        return "mvn_tril", {
            "loc": p["loc"],
            "scale_tril": [[d[i] if i == j else M.mpf(0) for j in range(len(d))] for i in range(len(d))],
        }
    if family == "one_hot_categorical":
        return "categorical", p
    return family, p


# --------------------------------------------------------------------------- entry points


def kl_terms(p_family: str, p: Params, q_family: str, q: Params) -> list:
    """KL(P||Q) as terms whose sum is the value ([inf] when infinite). Raises NotCovered."""
    pf, p = _alias(p_family, p)
    qf, q = _alias(q_family, q)
    if pf == "uniform" and p["low"] >= p["high"]:  # (>: an inverted interval, met only by sensitivity probes)
        return [M.mpf(0)] if qf == "uniform" and q["low"] == q["high"] == p["low"] == p["high"] else [INF]
    sp, sq = support(pf, p), support(qf, q)
    if sp is not None and sq is not None and not (sq[0] <= sp[0] and sp[1] <= sq[1]):
        if FAMILIES[p_family].kind == FAMILIES[q_family].kind:
            return [INF]
    if pf == qf and pf in SAME_FAMILY:
        return SAME_FAMILY[pf](p, q)
    kinds = FAMILIES[p_family].kind, FAMILIES[q_family].kind
    if kinds == ("continuous", "continuous"):
        terms = via_moments(pf, p, qf, q)
        if terms is not None:
            return terms
    if kinds == ("discrete", "discrete") and sp is not None and sp[1] < INF:
        return finite_sum(pf, p, qf, q)
    raise NotCovered(f"no closed form for {p_family} || {q_family}")


def covered(p_family: str, q_family: str) -> bool:
    """Whether kl_terms has a formula for the pair, asked with probe parameters: a narrow P and a
    wide Q, so that a pair whose supports can nest reaches its formula rather than the inf rule."""
    try:
        with mpmath.workdps(20):
            kl_terms(p_family, _probe(p_family, "p"), q_family, _probe(q_family, "q"))
    except NotCovered:
        return False
    return True


def _probe(family: str, role: str) -> Params:
    h = M.mpf(1) / 2
    probes = {
        "normal": {"loc": M.mpf(0), "scale": M.mpf(1)},
        "laplace": {"loc": M.mpf(0), "scale": M.mpf(1)},
        "gumbel": {"loc": M.mpf(0), "scale": M.mpf(1)},
        "cauchy": {"loc": M.mpf(0), "scale": M.mpf(1)},
        "log_normal": {"loc": M.mpf(0), "scale": M.mpf(1)},
        "half_normal": {"scale": M.mpf(1)},
        "mvn_tril": {"loc": [M.mpf(0)] * 2, "scale_tril": [[M.mpf(1), M.mpf(0)], [h, M.mpf(1)]]},
        "mvn_diag": {"loc": [M.mpf(0)] * 2, "scale_diag": [M.mpf(1), M.mpf(2)]},
        "categorical": {"probs": [h, h]},
        "one_hot_categorical": {"probs": [h, h]},
        "dirichlet": {"concentration": [M.mpf(1), M.mpf(2)]},
        "bernoulli": {"probs": h},
        "geometric": {"probs": h},
        "continuous_bernoulli": {"probs": M.mpf(1) / 3},
        "binomial": {"total_count": M.mpf(1 if role == "p" else 2), "probs": h},
        "poisson": {"rate": M.mpf(1)},
        "exponential": {"rate": M.mpf(1)},
        "chi2": {"df": M.mpf(3)},
        "gamma": {"concentration": M.mpf(2), "rate": M.mpf(1)},
        "beta": {"concentration1": M.mpf(2), "concentration0": M.mpf(3)},
        "uniform": {"low": M.mpf(1) / 4, "high": M.mpf(3) / 4}
        if role == "p"
        else {"low": M.mpf(-10), "high": M.mpf(10)},
        "pareto": {"scale": M.mpf(2) if role == "p" else M.mpf(1) / 1000, "concentration": M.mpf(3)},
    }
    return probes[family]


def kl(p_family: str, p: Params, q_family: str, q: Params):
    """KL(P||Q) as one mpf."""
    with mpmath.workdps(DIGITS + 10):
        terms = kl_terms(p_family, p, q_family, q)
        return INF if any(t == INF for t in terms) else M.fsum(terms)


# --------------------------------------------------------------------------- batches of parameters


def element_params(family: str, arrays: dict[str, np.ndarray], batch: tuple, index: tuple) -> Params:
    """One batch element's parameters as mpf (exactly the float64 values given), broadcast to `batch`."""
    out = {}
    for prm in FAMILIES[family].params:
        arr = np.asarray(arrays[prm.name], np.float64)
        event = arr.shape[arr.ndim - prm.event_rank :] if prm.event_rank else ()
        value = np.broadcast_to(arr, batch + event)[index]
        out[prm.name] = _to_mp(value)
    return out


def _to_mp(value):
    if np.ndim(value) == 0:
        return M.mpf(float(value))
    return [_to_mp(v) for v in value]


def evaluate(p_family: str, p_arrays: dict, q_family: str, q_arrays: dict, batch: tuple):
    """(values, magnitudes, term counts) over the batch: float64 arrays of the batch shape.
    magnitude = sum of |terms|, the cancellation a float evaluation of the formula faces."""
    values = np.empty(batch, np.float64)
    magnitude = np.empty(batch, np.float64)
    count = np.empty(batch, np.int64)
    with mpmath.workdps(DIGITS + 10):
        for index in np.ndindex(*batch):
            p = element_params(p_family, p_arrays, batch, index)
            q = element_params(q_family, q_arrays, batch, index)
            terms = kl_terms(p_family, p, q_family, q)
            infinite = any(t == INF for t in terms)
            values[index] = float(INF if infinite else M.fsum(terms))
            magnitude[index] = 0.0 if infinite else float(M.fsum(abs(t) for t in terms))
            count[index] = len(terms)
    return values, magnitude, count
