"""Same-family closed forms: KL(P||Q) as terms whose sum is the value (derivations in the docstrings).

Notation: psi = digamma, lnG = log-gamma, gamma_E = Euler's constant.
"""

from __future__ import annotations

from collections.abc import Callable

from .arithmetic import INF, M, normalised, xlogy
from .supports import finite_sum


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
    pp, qq = normalised(p["probs"]), normalised(q["probs"])
    if any(a > 0 and b == 0 for a, b in zip(pp, qq)):
        return [INF]
    return [t for a, b in zip(pp, qq) if a > 0 for t in (a * M.log(a), -a * M.log(b))]


def _bernoulli_terms(a, b):
    """a log(a/b) + (1-a) log((1-a)/(1-b)), inf where b puts no mass on an outcome a has."""
    if (a > 0 and b == 0) or (a < 1 and b == 1):
        return [INF]
    return [xlogy(a, a), -xlogy(a, b), xlogy(1 - a, 1 - a), -xlogy(1 - a, 1 - b)]


def _bernoulli(p, q):
    return _bernoulli_terms(p["probs"], q["probs"])


def _binomial(p, q):
    """Equal counts: n times the Bernoulli KL (the counts are sufficient). Fewer trials in P than
    in Q: no closed form, the exact finite sum (see finite_sum)."""
    if p["total_count"] == q["total_count"] == 0:  # both the point mass at 0, whatever the probabilities
        return [M.mpf(0)]
    if p["total_count"] == q["total_count"]:
        return [p["total_count"] * t for t in _bernoulli_terms(p["probs"], q["probs"])]
    return finite_sum("binomial", p, "binomial", q)


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
    return [xlogy(p["rate"], p["rate"]), -xlogy(p["rate"], q["rate"]), -p["rate"], q["rate"]]


def _uniform(p, q):
    """log((hq - lq)/(hp - lp)); the support check has already made P's interval lie inside Q's."""
    return [M.log(q["high"] - q["low"]), -M.log(p["high"] - p["low"])]


def _geometric(p, q):
    """pmf(k) = (1-r) ^ k r, k >= 0, E_P[k] = (1 - rp)/rp:  log(rp/rq) + E_P[k] log((1 - rp)/(1 - rq))."""
    a, b = p["probs"], q["probs"]
    if a < 1 and b == 1:
        return [INF]
    mean = (1 - a) / a
    return [M.log(a), -M.log(b), xlogy(mean, 1 - a), -xlogy(mean, 1 - b)]


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
