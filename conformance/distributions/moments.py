"""Cross-family closed forms for univariate continuous P and Q: KL = -H(P) + H(P, Q), with the cross-entropy
H(P, Q) = -E_P[log q(X)] written through moments of P (mean, variance, E log X, E log(1-X), E|X - c|,
E exp(tX)); a pair is covered when P has the moments Q's log density needs.
"""

from __future__ import annotations

from .arithmetic import INF, M, Params, lnbeta, xlogy


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
            moments["log"] = (xlogy(hi, hi) - xlogy(lo, lo)) / width - 1
        if hi <= 1:  # 1 - X is uniform on [1 - hi, 1 - lo]
            moments["log1m"] = (xlogy(1 - lo, 1 - lo) - xlogy(1 - hi, 1 - hi)) / width - 1
        return moments
    if family == "beta":
        a, b = p["concentration1"], p["concentration0"]
        return {
            "entropy": [
                lnbeta(a, b),
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
    return [lnbeta(a, b), -(a - 1) * m["log"], -(b - 1) * m["log1m"]]


def via_moments(pf: str, p: Params, qf: str, q: Params) -> list | None:
    m = _moments(pf, p)
    if m is None:
        return None
    cross = _cross_entropy(qf, q, m)
    return None if cross is None else [-t for t in m["entropy"]] + cross
