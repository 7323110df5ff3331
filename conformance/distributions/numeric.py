"""KL(P||Q) by numerical integration or summation of p log(p/q): an independent check of closed_forms.

Each family here has its log density (or log pmf) written straight from its definition, with
none of the moment algebra the closed forms use; klconf's tests compare the two. Precision is
lower than the oracle's (30 working digits; quadrature near an integrable singularity such as
x^(a-1) log x at 0 keeps 12 to 15 of them) and the routines are meant for small
parameter sets: they are slow by design, and never used to produce expected values.
"""

from __future__ import annotations

import mpmath
import numpy as np
from mpmath import mpf

INF = mpf("inf")
UNDERFLOW = 10**4


def log_density(family: str, p: dict, x):
    """log p(x) for univariate families (a pmf for the discrete ones); -inf off the support."""

    def outside(lo, hi):
        return x < lo or x > hi

    if family == "normal":
        return -mpmath.log(p["scale"] * mpmath.sqrt(2 * mpmath.pi)) - (x - p["loc"]) ** 2 / (2 * p["scale"] ** 2)
    if family == "half_normal":
        return -INF if x < 0 else mpmath.log(mpmath.sqrt(2 / mpmath.pi) / p["scale"]) - x**2 / (2 * p["scale"] ** 2)
    if family == "log_normal":
        if x <= 0:
            return -INF
        return -mpmath.log(x * p["scale"] * mpmath.sqrt(2 * mpmath.pi)) - (mpmath.log(x) - p["loc"]) ** 2 / (
            2 * p["scale"] ** 2
        )
    if family == "laplace":
        return -mpmath.log(2 * p["scale"]) - abs(x - p["loc"]) / p["scale"]
    if family == "cauchy":
        return -mpmath.log(mpmath.pi * p["scale"] * (1 + ((x - p["loc"]) / p["scale"]) ** 2))
    if family == "gumbel":
        z = max((x - p["loc"]) / p["scale"], -(mpf(10) ** 4))  # beyond, e^-z overflows and p is 0 anyway
        return -mpmath.log(p["scale"]) - z - mpmath.exp(-z)
    if family in ("gamma", "exponential", "chi2"):
        a, r = {
            "gamma": lambda: (p["concentration"], p["rate"]),
            "exponential": lambda: (mpf(1), p["rate"]),
            "chi2": lambda: (p["df"] / 2, mpf(1) / 2),
        }[family]()
        return -INF if x <= 0 else a * mpmath.log(r) - mpmath.loggamma(a) + (a - 1) * mpmath.log(x) - r * x
    if family == "beta":
        a, b = p["concentration1"], p["concentration0"]
        if outside(0, 1) or x in (0, 1):
            return -INF
        return (a - 1) * mpmath.log(x) + (b - 1) * mpmath.log(1 - x) - mpmath.log(mpmath.beta(a, b))
    if family == "uniform":
        return -INF if outside(p["low"], p["high"]) else -mpmath.log(p["high"] - p["low"])
    if family == "pareto":
        s, a = p["scale"], p["concentration"]
        return -INF if x < s else mpmath.log(a) + a * mpmath.log(s) - (a + 1) * mpmath.log(x)
    if family == "continuous_bernoulli":
        lam = p["probs"]
        if outside(0, 1):
            return -INF
        # the normalising constant C(lam) = 2 atanh(1 - 2 lam)/(1 - 2 lam), with its limit 2 at lam = 1/2
        norm = mpf(2) if lam == mpf(1) / 2 else 2 * mpmath.atanh(1 - 2 * lam) / (1 - 2 * lam)
        return mpmath.log(norm) + x * mpmath.log(lam) + (1 - x) * mpmath.log(1 - lam)
    if family == "bernoulli":
        return _log(p["probs"] if x == 1 else 1 - p["probs"]) if x in (0, 1) else -INF
    if family == "binomial":
        n, r = p["total_count"], p["probs"]
        return -INF if x > n else _log(mpmath.binomial(n, x) * r**x * (1 - r) ** (n - x))
    if family == "poisson":
        if p["rate"] == 0:
            return mpf(0) if x == 0 else -INF
        return x * mpmath.log(p["rate"]) - p["rate"] - mpmath.loggamma(x + 1)
    if family == "geometric":
        return _log((1 - p["probs"]) ** x * p["probs"])
    raise KeyError(family)


def _log(x):
    return -INF if x == 0 else mpmath.log(x)


def _breakpoints(family: str, p: dict) -> list:
    """Where P's density has a kink or most of its mass: quadrature splits the line there."""
    if family in ("normal", "laplace", "cauchy", "gumbel"):
        m, s = p["loc"], p["scale"]
        return [m - 8 * s, m - s, m, m + s, m + 8 * s]
    if family in ("gamma", "exponential", "chi2", "half_normal", "log_normal"):
        return [mpf(1) / 100, mpf(1) / 10, mpf(1), mpf(10)]  # splits the singularity at 0 from the tail
    if family == "uniform":
        return [p["low"], p["high"]]
    if family == "pareto":
        return [p["scale"], 2 * p["scale"], 10 * p["scale"]]
    return []


def _support(family: str, p: dict) -> tuple:
    if family in ("normal", "laplace", "cauchy", "gumbel"):
        return -INF, INF
    if family in ("gamma", "exponential", "chi2", "half_normal", "log_normal"):
        return mpf(0), INF
    if family in ("beta", "continuous_bernoulli"):
        return mpf(0), mpf(1)
    if family == "uniform":
        return p["low"], p["high"]
    if family == "pareto":
        return p["scale"], INF
    raise KeyError(family)


def _probe_points(lo, hi) -> list:
    """Points inside (lo, hi), spread over its whole range, to find where Q has no mass."""
    if abs(lo) != INF and abs(hi) != INF:
        return [lo + (hi - lo) * i / 64 for i in range(1, 64)]
    spread = [mpf(10) ** e for e in range(-6, 7)]
    if abs(lo) != INF:
        return [lo + s for s in spread]
    if abs(hi) != INF:
        return [hi - s for s in spread]
    return [mpf(0)] + spread + [-s for s in spread]


DISCRETE = ("bernoulli", "binomial", "poisson", "geometric")


def kl(p_family: str, p: dict, q_family: str, q: dict, dps: int = 30):
    """KL(P||Q) of two univariate families by quadrature (continuous) or summation (discrete)."""
    with mpmath.workdps(dps):
        if p_family in DISCRETE:
            return _sum(p_family, p, q_family, q)
        lo, hi = _support(p_family, p)
        points = sorted({lo, hi, *[b for b in _breakpoints(p_family, p) + _breakpoints(q_family, q) if lo < b < hi]})
        for x in _probe_points(lo, hi):
            if log_density(p_family, p, x) > -INF and log_density(q_family, q, x) == -INF:
                return INF  # P has mass where Q has none

        def integrand(x):
            lp = log_density(p_family, p, x)
            if lp < -UNDERFLOW:  # p(x) < exp(-10^4): no contribution, and exp would overflow the exponent
                return mpf(0)
            lq = log_density(q_family, q, x)
            return INF if lq == -INF else mpmath.exp(lp) * (lp - lq)

        return mpmath.quad(integrand, points)


def _sum(p_family: str, p: dict, q_family: str, q: dict):
    if p_family == "poisson":
        top = int(p["rate"] + 40 * mpmath.sqrt(p["rate"]) + 60)  # the tail beyond is below 10^-30
    elif p_family == "geometric":
        top = 60 if p["probs"] == 1 else int(80 / -mpmath.log10(1 - p["probs"])) + 1
    elif p_family == "binomial":
        top = int(p["total_count"])
    else:
        top = 1
    total = mpf(0)
    for k in range(top + 1):
        lp = log_density(p_family, p, k)
        if lp == -INF:
            continue
        lq = log_density(q_family, q, k)
        if lq == -INF:
            return INF
        total += mpmath.exp(lp) * (lp - lq)
    return total


def kl_categorical(p: list, q: list, dps: int = 20):
    """The defining sum over classes of the normalised probabilities."""
    with mpmath.workdps(dps):
        sp, sq = mpmath.fsum(p), mpmath.fsum(q)
        return mpmath.fsum(a / sp * (mpmath.log(a / sp) - mpmath.log(b / sq)) for a, b in zip(p, q) if a)


def kl_mvn(p_loc, p_cov, q_loc, q_cov, nodes: int = 6):
    """E_P[log p(X) - log q(X)] by Gauss-Hermite quadrature in P's whitened coordinates, with the
    densities written from the covariance matrices (inverse and determinant), not from Cholesky
    factors. The integrand is a quadratic polynomial in the whitened variable, so the rule is exact
    up to float64 rounding of its nodes."""
    import itertools

    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / np.sqrt(2 * np.pi)
    k = len(p_loc)
    with mpmath.workdps(30):
        sp, sq = mpmath.matrix(p_cov), mpmath.matrix(q_cov)
        lp = mpmath.cholesky(sp)
        ip, iq = mpmath.inverse(sp), mpmath.inverse(sq)
        ldp, ldq = mpmath.log(mpmath.det(sp)), mpmath.log(mpmath.det(sq))
        mp_, mq = mpmath.matrix(p_loc), mpmath.matrix(q_loc)
        total = mpf(0)
        for idx in itertools.product(range(nodes), repeat=k):
            x = mp_ + lp * mpmath.matrix([mpf(float(z[i])) for i in idx])
            weight = mpmath.fprod(mpf(float(w[i])) for i in idx)
            dp, dq = x - mp_, x - mq
            log_p = -(dp.T * ip * dp)[0] / 2 - ldp / 2
            log_q = -(dq.T * iq * dq)[0] / 2 - ldq / 2
            total += weight * (log_p - log_q)
        return total


def kl_dirichlet3(p: list, q: list, dps: int = 15):
    """Three-class Dirichlet KL by 2-D quadrature over the simplex (x1 = u, x2 = (1 - u) v)."""
    with mpmath.workdps(dps):

        def log_density_(a, x):
            return (
                mpmath.loggamma(mpmath.fsum(a))
                - mpmath.fsum(mpmath.loggamma(c) for c in a)
                + mpmath.fsum((c - 1) * mpmath.log(xi) for c, xi in zip(a, x))
            )

        def integrand(u, v):
            x = [u, (1 - u) * v, (1 - u) * (1 - v)]
            if min(x) <= 0:
                return mpf(0)
            lp = log_density_(p, x)
            return (1 - u) * mpmath.exp(lp) * (lp - log_density_(q, x))

        return mpmath.quad(integrand, [0, 1], [0, 1])
