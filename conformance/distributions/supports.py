"""Where a distribution puts its mass, and exact finite sums over a discrete P's support.

Supports are where the distribution actually puts mass, not its family's nominal range (the point-mass
members of the discrete families are points); a discrete P with finite support against a discrete Q
has the exact KL sum_k p(k) log(p(k)/q(k)).
"""

from __future__ import annotations

from .arithmetic import INF, M, NotCovered, Params, xlogy

FINITE_SUM_LIMIT = 10_000  # terms of exact sums over a discrete P's support, per element (and per case: cases.py)


def support(family: str, p: Params) -> tuple | None:
    """(lo, hi) of where a univariate distribution puts mass (for the discrete families, the integers
    between): its family's range, narrowed to a point for the degenerate members; None for the others."""
    point = point_mass(family, p)
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


def point_mass(family: str, p: Params):
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


def log_pmf(family: str, p: Params, k: int):
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
        return xlogy(k, 1 - r) + M.log(r)
    raise NotCovered(family)


def _log_or_minus_inf(x):
    return -INF if x == 0 else M.log(x)


def finite_sum(pf: str, p: Params, qf: str, q: Params) -> list:
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
        lp = log_pmf(pf, p, k)
        if lp == -INF:
            continue
        lq = log_pmf(qf, q, k)
        if lq == -INF:
            return [INF]
        prob = M.exp(lp)
        terms += [prob * lp, -prob * lq]
    return terms
