"""Closed-form KL(P||Q) between distribution families, in mpmath at `oracle.DIGITS` digits (and the same
formulas on arb balls, which certify it: certify.py).

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
3. a same-family formula (derivations in the docstrings);
4. for two univariate continuous families, KL = -H(P) + H(P, Q), with the cross-entropy
   H(P, Q) = -E_P[log q(X)] written through moments of P (mean, variance, E log X,
   E log(1-X), E|X - c|, E exp(tX)); a pair is covered when P has the moments Q's log
   density needs;
5. for a discrete P with finite support (Bernoulli, Binomial, and the point-mass members of
   Poisson and Geometric) against a discrete Q, the exact finite sum of p(k) log(p(k)/q(k)).

Notation: psi = digamma, lnG = log-gamma, gamma_E = Euler's constant. This module never
imports a framework; klconf's tests check every formula against numeric.py's quadrature.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import mpmath
import numpy as np

from ..oracle import DIGITS
from .families import FAMILIES

PROVENANCE = f"mpmath {mpmath.__version__} closed form, {DIGITS} digits"
INF = math.inf  # an infinite KL, in either arithmetic (mpmath and arb compare with it)

# The arithmetic the formulas run in: mpmath (a working precision, the default), or arb balls
# (`certify.ARB`), whose results carry rigorous bounds. A formula spells every constant, function and
# number through `M`, never mpmath directly, so one formula serves both.
_ARITHMETIC: ContextVar[Any] = ContextVar("closed_form_arithmetic", default=mpmath)


class _Current:
    def __getattr__(self, name: str):
        return getattr(_ARITHMETIC.get(), name)


M: Any = _Current()


@contextmanager
def arithmetic(namespace):
    """Evaluate the formulas in `namespace` (mpmath's names: mpf, log, loggamma, digamma, ...) within."""
    token = _ARITHMETIC.set(namespace)
    try:
        yield
    finally:
        _ARITHMETIC.reset(token)


Params = dict  # canonical parameter name -> mpf, list of mpf (vector) or list of lists (matrix)


class NotCovered(Exception):
    """The oracle has no closed form for this pair."""


# --------------------------------------------------------------------------- helpers


def _xlogy(x, y):
    """x*log(y) with 0*log(anything) = 0."""
    return M.mpf(0) if x == 0 else x * M.log(y)


def _lnbeta(a, b):
    return M.loggamma(a) + M.loggamma(b) - M.loggamma(a + b)


def _normalised(weights: list) -> list:
    total = M.fsum(weights)
    return [w / total for w in weights]


# --------------------------------------------------------------------------- aliases and supports


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


FINITE_SUM_LIMIT = 10_000  # terms of exact sums over a discrete P's support, per element (and per case: cases.py)


def support(family: str, p: Params) -> tuple | None:
    """(lo, hi) of where a univariate distribution puts mass (for the discrete families, the integers
    between): its family's range, narrowed to a point for the degenerate members; None for the others."""
    point = _point_mass(family, p)
    if point is not None:
        return point, point
    fixed = {
        "normal": (-INF, INF),
        "laplace": (-INF, INF),
        "gumbel": (-INF, INF),
        "cauchy": (-INF, INF),
        "gamma": (0, INF),
        "exponential": (0, INF),
        "half_normal": (0, INF),
        "log_normal": (0, INF),
        "beta": (0, 1),
        "continuous_bernoulli": (0, 1),
        "bernoulli": (0, 1),
        "poisson": (0, INF),
        "geometric": (0, INF),
    }
    if family in fixed:
        return fixed[family]
    if family == "uniform":
        return p["low"], p["high"]
    if family == "pareto":
        return p["scale"], INF
    if family == "binomial":
        return 0, p["total_count"]
    return None


def _point_mass(family: str, p: Params):
    """The one point a degenerate member of a discrete family puts all its mass on; None otherwise."""
    if family == "poisson" and p["rate"] == 0:
        return M.mpf(0)
    if family == "geometric" and p["probs"] == 1:
        return M.mpf(0)
    if family == "bernoulli" and p["probs"] in (0, 1):
        return p["probs"]
    if family == "binomial" and (p["probs"] in (0, 1) or p["total_count"] == 0):
        return p["total_count"] * p["probs"]
    return None


# --------------------------------------------------------------------------- same-family formulas


def _normal(p, q):
    """log(sq/sp) + sp^2/(2 sq^2) + (mp - mq)^2/(2 sq^2) - 1/2."""
    return [
        M.log(q["scale"]),
        -M.log(p["scale"]),
        p["scale"] ** 2 / (2 * q["scale"] ** 2),
        (p["loc"] - q["loc"]) ** 2 / (2 * q["scale"] ** 2),
        M.mpf(-1) / 2,
    ]


def _mvn(p, q):
    """1/2 [tr(Sq^-1 Sp) + (mq - mp)' Sq^-1 (mq - mp) - k + ln det Sq - ln det Sp] with S = L L':
    tr = ||Lq^-1 Lp||_F^2, the quadratic form = ||Lq^-1 (mq - mp)||^2, ln det S = 2 sum log L_ii."""
    lp, lq = p["scale_tril"], q["scale_tril"]
    k = len(lq)

    def solve(b):  # forward substitution: Lq x = b
        x = []
        for i in range(k):
            x.append((b[i] - M.fsum(lq[i][j] * x[j] for j in range(i))) / lq[i][i])
        return x

    columns = [solve([lp[i][j] for i in range(k)]) for j in range(k)]
    trace = M.fsum(v**2 for col in columns for v in col)
    z = solve([q["loc"][i] - p["loc"][i] for i in range(k)])
    return [
        M.fsum(M.log(abs(lq[i][i])) for i in range(k)),
        -M.fsum(M.log(abs(lp[i][i])) for i in range(k)),
        trace / 2,
        M.fsum(v**2 for v in z) / 2,
        M.mpf(-k) / 2,
    ]


def _categorical(p, q):
    """sum_i p_i (log p_i - log q_i) over normalised probabilities; p_i = 0 adds 0, q_i = 0 < p_i gives inf."""
    pp, qq = _normalised(p["probs"]), _normalised(q["probs"])
    if any(a > 0 and b == 0 for a, b in zip(pp, qq)):
        return [INF]
    return [t for a, b in zip(pp, qq) if a > 0 for t in (a * M.log(a), -a * M.log(b))]


def _bernoulli_terms(a, b):
    """a log(a/b) + (1-a) log((1-a)/(1-b)), inf where b puts no mass on an outcome a has."""
    if (a > 0 and b == 0) or (a < 1 and b == 1):
        return [INF]
    return [_xlogy(a, a), -_xlogy(a, b), _xlogy(1 - a, 1 - a), -_xlogy(1 - a, 1 - b)]


def _bernoulli(p, q):
    return _bernoulli_terms(p["probs"], q["probs"])


def _binomial(p, q):
    """Equal counts: n times the Bernoulli KL (the counts are sufficient). Fewer trials in P than
    in Q: no closed form, the exact finite sum (see _finite_sum)."""
    if p["total_count"] == q["total_count"] == 0:  # both the point mass at 0, whatever the probabilities
        return [M.mpf(0)]
    if p["total_count"] == q["total_count"]:
        return [p["total_count"] * t for t in _bernoulli_terms(p["probs"], q["probs"])]
    return _finite_sum("binomial", p, "binomial", q)


def _beta(p, q):
    """lnB(aq, bq) - lnB(ap, bp) + (ap - aq) psi(ap) + (bp - bq) psi(bp) + (aq - ap + bq - bp) psi(ap + bp)."""
    ap, bp, aq, bq = p["concentration1"], p["concentration0"], q["concentration1"], q["concentration0"]
    return [
        M.loggamma(aq),
        M.loggamma(bq),
        -M.loggamma(aq + bq),
        -M.loggamma(ap),
        -M.loggamma(bp),
        M.loggamma(ap + bp),
        (ap - aq) * M.digamma(ap),
        (bp - bq) * M.digamma(bp),
        (aq - ap + bq - bp) * M.digamma(ap + bp),
    ]


def _gamma(p, q):
    """(ap - aq) psi(ap) - lnG(ap) + lnG(aq) + aq (log bp - log bq) + ap (bq - bp)/bp  (rate parametrisation)."""
    ap, bp, aq, bq = p["concentration"], p["rate"], q["concentration"], q["rate"]
    return [
        (ap - aq) * M.digamma(ap),
        -M.loggamma(ap),
        M.loggamma(aq),
        aq * M.log(bp),
        -aq * M.log(bq),
        ap * bq / bp,
        -ap,
    ]


def _dirichlet(p, q):
    """lnG(sum ap) - sum lnG(ap_i) - lnG(sum aq) + sum lnG(aq_i) + sum (ap_i - aq_i)(psi(ap_i) - psi(sum ap))."""
    ap, aq = p["concentration"], q["concentration"]
    sp, sq = M.fsum(ap), M.fsum(aq)
    return (
        [M.loggamma(sp), -M.loggamma(sq)]
        + [-M.loggamma(a) for a in ap]
        + [M.loggamma(a) for a in aq]
        + [(a - b) * (M.digamma(a) - M.digamma(sp)) for a, b in zip(ap, aq)]
    )


def _exponential(p, q):
    """log(lp/lq) + lq/lp - 1."""
    return [M.log(p["rate"]), -M.log(q["rate"]), q["rate"] / p["rate"], M.mpf(-1)]


def _laplace(p, q):
    """log(bq/bp) + |mp - mq|/bq + (bp/bq) exp(-|mp - mq|/bp) - 1."""
    d = abs(p["loc"] - q["loc"])
    return [
        M.log(q["scale"]),
        -M.log(p["scale"]),
        d / q["scale"],
        p["scale"] / q["scale"] * M.exp(-d / p["scale"]),
        M.mpf(-1),
    ]


def _poisson(p, q):
    """lp log(lp/lq) - lp + lq; a rate of 0 is the point mass at 0 (0 log 0 = 0)."""
    if p["rate"] > 0 and q["rate"] == 0:
        return [INF]
    return [_xlogy(p["rate"], p["rate"]), -_xlogy(p["rate"], q["rate"]), -p["rate"], q["rate"]]


def _uniform(p, q):
    """log((hq - lq)/(hp - lp)); the support check has already made P's interval lie inside Q's."""
    return [M.log(q["high"] - q["low"]), -M.log(p["high"] - p["low"])]


def _geometric(p, q):
    """pmf(k) = (1-r) ^ k r, k >= 0, E_P[k] = (1 - rp)/rp:  log(rp/rq) + E_P[k] log((1 - rp)/(1 - rq))."""
    a, b = p["probs"], q["probs"]
    if a < 1 and b == 1:
        return [INF]
    mean = (1 - a) / a
    return [M.log(a), -M.log(b), _xlogy(mean, 1 - a), -_xlogy(mean, 1 - b)]


def _gumbel(p, q):
    """log(bq/bp) + gamma_E (bp/bq - 1) + (mp - mq)/bq + exp((mq - mp)/bq) G(1 + bp/bq) - 1.
    From E_P[(X - mq)/bq] = (mp + gamma_E bp - mq)/bq and E_P[exp(-(X - mq)/bq)] =
    exp((mq - mp)/bq) G(1 + bp/bq) (the standard Gumbel has E exp(sZ) = G(1 - s))."""
    mp_, bp, mq, bq = p["loc"], p["scale"], q["loc"], q["scale"]
    r = bp / bq
    return [
        M.log(bq),
        -M.log(bp),
        M.euler * r,
        -M.euler,
        (mp_ - mq) / bq,
        M.exp((mq - mp_) / bq + M.loggamma(1 + r)),
        M.mpf(-1),
    ]


def _cauchy(p, q):
    """log(((sp + sq)^2 + (mp - mq)^2) / (4 sp sq))  (Chyzak and Nielsen, 2019)."""
    sp, sq = p["scale"], q["scale"]
    return [M.log((sp + sq) ** 2 + (p["loc"] - q["loc"]) ** 2), -M.log(4 * sp * sq)]


def _half_normal(p, q):
    """The normal formula with both locations 0: folding at 0 maps both densities alike."""
    return _normal({"loc": M.mpf(0), "scale": p["scale"]}, {"loc": M.mpf(0), "scale": q["scale"]})


def _log_normal(p, q):
    """KL is invariant under the bijection exp: the normal formula on (loc, scale)."""
    return _normal(p, q)


def _pareto(p, q):
    """log(ap/aq) + aq log(sp/sq) + aq/ap - 1, from E_P[log X] = log sp + 1/ap (support checked: sp >= sq)."""
    ap, sp, aq, sq = p["concentration"], p["scale"], q["concentration"], q["scale"]
    return [M.log(ap), -M.log(aq), aq * M.log(sp), -aq * M.log(sq), aq / ap, M.mpf(-1)]


def _cb_log_norm(lam):
    """log C(lam), C(lam) = 2 atanh(1 - 2 lam)/(1 - 2 lam), C(1/2) = 2."""
    if lam == M.mpf(1) / 2:
        return M.log(2)
    return M.log(2 * M.atanh(1 - 2 * lam) / (1 - 2 * lam))


def _cb_mean(lam):
    if lam == M.mpf(1) / 2:
        return M.mpf(1) / 2
    return lam / (2 * lam - 1) + 1 / (2 * M.atanh(1 - 2 * lam))


def _continuous_bernoulli(p, q):
    """log p(x) = log C(lam) + x logit(lam) + log(1 - lam) on [0, 1], so KL = E_P[X](logit lp - logit lq)
    + log C(lp) - log C(lq) + log(1 - lp) - log(1 - lq)."""
    a, b = p["probs"], q["probs"]
    logit = lambda x: M.log(x) - M.log(1 - x)
    return [
        _cb_mean(a) * logit(a),
        -_cb_mean(a) * logit(b),
        _cb_log_norm(a),
        -_cb_log_norm(b),
        M.log(1 - a),
        -M.log(1 - b),
    ]


SAME_FAMILY: dict[str, Callable] = {
    "normal": _normal,
    "mvn_tril": _mvn,
    "categorical": _categorical,
    "bernoulli": _bernoulli,
    "binomial": _binomial,
    "beta": _beta,
    "gamma": _gamma,
    "dirichlet": _dirichlet,
    "exponential": _exponential,
    "laplace": _laplace,
    "poisson": _poisson,
    "uniform": _uniform,
    "geometric": _geometric,
    "gumbel": _gumbel,
    "cauchy": _cauchy,
    "half_normal": _half_normal,
    "log_normal": _log_normal,
    "pareto": _pareto,
    "continuous_bernoulli": _continuous_bernoulli,
}


# --------------------------------------------------------------------------- cross families via moments


def _moments(family: str, p: Params) -> dict | None:
    """Entropy (as terms) and the expectations cross-entropies need, for a univariate continuous P."""
    if family == "normal":
        m, s = p["loc"], p["scale"]
        return {
            "entropy": [M.log(s), (1 + M.log(2 * M.pi)) / 2],
            "mean": m,
            "var": s**2,
            "abs": lambda c: (
                s * M.sqrt(2 / M.pi) * M.exp(-((m - c) ** 2) / (2 * s**2)) + (m - c) * M.erf((m - c) / (s * M.sqrt(2)))
            ),
            "mgf": lambda t: M.exp(m * t + s**2 * t**2 / 2),
        }
    if family == "laplace":
        m, b = p["loc"], p["scale"]
        return {
            "entropy": [M.mpf(1), M.log(2 * b)],
            "mean": m,
            "var": 2 * b**2,
            "abs": lambda c: abs(m - c) + b * M.exp(-abs(m - c) / b),
            "mgf": lambda t: M.exp(m * t) / (1 - b**2 * t**2) if abs(b * t) < 1 else INF,
        }
    if family == "gumbel":
        m, b = p["loc"], p["scale"]
        return {
            "entropy": [M.log(b), M.euler, M.mpf(1)],
            "mean": m + M.euler * b,
            "var": M.pi**2 * b**2 / 6,
            "mgf": lambda t: M.exp(m * t) * M.gamma(1 - b * t) if b * t < 1 else INF,
        }
    if family == "exponential":
        r = p["rate"]
        return {
            "entropy": [M.mpf(1), -M.log(r)],
            "mean": 1 / r,
            "var": 1 / r**2,
            "log": -M.euler - M.log(r),
            "mgf": lambda t: r / (r - t) if t < r else INF,
        }
    if family == "gamma":
        a, r = p["concentration"], p["rate"]
        return {
            "entropy": [a, -M.log(r), M.loggamma(a), (1 - a) * M.digamma(a)],
            "mean": a / r,
            "var": a / r**2,
            "log": M.digamma(a) - M.log(r),
            "mgf": lambda t: (1 - t / r) ** -a if t < r else INF,
        }
    if family == "uniform":
        lo, hi = p["low"], p["high"]
        width = hi - lo
        moments = {
            "entropy": [M.log(width)],
            "mean": (lo + hi) / 2,
            "var": width**2 / 12,
            "abs": lambda c: (
                (lo + hi) / 2 - c
                if c <= lo
                else c - (lo + hi) / 2
                if c >= hi
                else ((c - lo) ** 2 + (hi - c) ** 2) / (2 * width)
            ),
            "mgf": lambda t: (M.exp(t * hi) - M.exp(t * lo)) / (t * width) if t != 0 else M.mpf(1),
        }
        if lo >= 0:  # E log X = (hi log hi - lo log lo)/(hi - lo) - 1
            moments["log"] = (_xlogy(hi, hi) - _xlogy(lo, lo)) / width - 1
        if hi <= 1:  # 1 - X is uniform on [1 - hi, 1 - lo]
            moments["log1m"] = (_xlogy(1 - lo, 1 - lo) - _xlogy(1 - hi, 1 - hi)) / width - 1
        return moments
    if family == "beta":
        a, b = p["concentration1"], p["concentration0"]
        return {
            "entropy": [
                _lnbeta(a, b),
                -(a - 1) * M.digamma(a),
                -(b - 1) * M.digamma(b),
                (a + b - 2) * M.digamma(a + b),
            ],
            "mean": a / (a + b),
            "var": a * b / ((a + b) ** 2 * (a + b + 1)),
            "log": M.digamma(a) - M.digamma(a + b),
            "log1m": M.digamma(b) - M.digamma(a + b),
            "mgf": lambda t: M.hyp1f1(a, a + b, t),
        }
    return None


def _cross_entropy(family: str, q: Params, m: dict) -> list | None:
    """-E_P[log q(X)] as terms, from P's moments `m`; None when P lacks a moment this Q needs."""
    need = {
        "normal": ("mean", "var"),
        "laplace": ("abs",),
        "gumbel": ("mean", "mgf"),
        "exponential": ("mean",),
        "gamma": ("mean", "log"),
        "uniform": (),
        "beta": ("log", "log1m"),
    }
    if family not in need or any(k not in m for k in need[family]):
        return None
    if family == "normal":  # log(s sqrt(2 pi)) + (var + (mean - loc)^2)/(2 s^2)
        s = q["scale"]
        return [
            M.log(s),
            M.log(2 * M.pi) / 2,
            m["var"] / (2 * s**2),
            (m["mean"] - q["loc"]) ** 2 / (2 * s**2),
        ]
    if family == "laplace":  # log(2b) + E|X - loc|/b
        return [M.log(2 * q["scale"]), m["abs"](q["loc"]) / q["scale"]]
    if family == "gumbel":  # log b + (E X - loc)/b + E exp(-(X - loc)/b)
        loc, b = q["loc"], q["scale"]
        return [M.log(b), (m["mean"] - loc) / b, M.exp(loc / b) * m["mgf"](-1 / b)]
    if family == "exponential":  # -log r + r E X
        return [-M.log(q["rate"]), q["rate"] * m["mean"]]
    if family == "gamma":  # -a log r + lnG(a) - (a - 1) E log X + r E X
        a, r = q["concentration"], q["rate"]
        return [-a * M.log(r), M.loggamma(a), -(a - 1) * m["log"], r * m["mean"]]
    if family == "uniform":  # log(high - low) on the (checked) common support
        return [M.log(q["high"] - q["low"])]
    a, b = q["concentration1"], q["concentration0"]  # beta: lnB(a, b) - (a-1) E log X - (b-1) E log(1-X)
    return [_lnbeta(a, b), -(a - 1) * m["log"], -(b - 1) * m["log1m"]]


def _via_moments(pf: str, p: Params, qf: str, q: Params) -> list | None:
    m = _moments(pf, p)
    if m is None:
        return None
    cross = _cross_entropy(qf, q, m)
    return None if cross is None else [-t for t in m["entropy"]] + cross


# --------------------------------------------------------------------------- discrete, finite support


def _log_pmf(family: str, p: Params, k: int):
    if family == "bernoulli":
        r = p["probs"]
        return _log_or_minus_inf(r if k == 1 else 1 - r) if k in (0, 1) else -INF
    if family == "binomial":
        n, r = p["total_count"], p["probs"]
        if k > n:
            return -INF
        prob = M.binomial(n, k) * r**k * (1 - r) ** (n - k)
        return _log_or_minus_inf(prob)
    if family == "poisson":
        lam = p["rate"]
        return (0 if k == 0 else -INF) if lam == 0 else k * M.log(lam) - lam - M.loggamma(k + 1)
    if family == "geometric":
        r = p["probs"]
        return _xlogy(k, 1 - r) + M.log(r)
    raise NotCovered(family)


def _log_or_minus_inf(x):
    return -INF if x == 0 else M.log(x)


def _finite_sum(pf: str, p: Params, qf: str, q: Params) -> list:
    """sum_k p(k) (log p(k) - log q(k)) over P's finite support, term by term."""
    bounds = support(pf, p)
    assert bounds is not None, f"{pf}: an exact finite sum is taken only over a bounded support"
    lo, hi = (int(float(x)) for x in bounds)  # (exact integers, an mpf or an exact ball)
    if hi - lo >= FINITE_SUM_LIMIT:
        raise NotCovered(
            f"the exact sum over {pf}'s support would take {hi - lo + 1:,} terms (more than {FINITE_SUM_LIMIT:,})"
        )
    terms = []
    for k in range(lo, hi + 1):
        lp = _log_pmf(pf, p, k)
        if lp == -INF:
            continue
        lq = _log_pmf(qf, q, k)
        if lq == -INF:
            return [INF]
        prob = M.exp(lp)
        terms += [prob * lp, -prob * lq]
    return terms


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
        terms = _via_moments(pf, p, qf, q)
        if terms is not None:
            return terms
    if kinds == ("discrete", "discrete") and sp is not None and sp[1] < INF:
        return _finite_sum(pf, p, qf, q)
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
