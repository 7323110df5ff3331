"""KL terms, reductions and analytic gradients over whole arrays, in bounded double-word arithmetic.

Special values are decided first, from the fed values alone (`Flags`): which probabilities are NaN
(NaN or negative input, an invalid row), exactly zero (a zero, of either sign, fed as a probability;
-inf fed as a log-probability or logit) or +inf. Those decisions are exact, so special results (0,
+-inf, NaN under the zero conventions) carry a bound of 0. Every other element is computed in
`doubleword` with a proven bound; `ball` recomputes in `arb` whatever needs a tighter one.

Logits are turned into log-probabilities without cancellation: with the row's largest logit at
index t and S the sum of exp(x_i - x_t) over the other classes, log p_t = -log1p(S) and
log p_i = (x_i - x_t) - log1p(S), so a dominant class keeps its (tiny) log-probability exactly;
p_i = exp(x_i - x_t) / (1 + S) reuses the exponentials.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import doubleword as dw
from .doubleword import Dw


@dataclass(frozen=True)
class Flags:
    """Exact special-value decisions for one argument, after clipping and normalisation."""

    nan: np.ndarray  # the probability is undefined
    zero: np.ndarray  # the probability is exactly 0
    inf: np.ndarray  # the probability is +inf

    @property
    def regular(self) -> np.ndarray:
        return ~(self.nan | self.zero | self.inf)


def clipped_prob(fed: np.ndarray, clip: float | None) -> np.ndarray:
    """Probabilities clipped to [clip, 1] (exact in float64: the bounds are float64 values)."""
    if clip is None:
        return fed
    with np.errstate(invalid="ignore"):
        return np.where(np.isnan(fed), fed, np.minimum(np.maximum(fed, clip), 1.0))


def flags(fed: np.ndarray, space: str, clip: float | None, normalize: bool) -> Flags:
    with np.errstate(invalid="ignore"):
        if space == "prob":
            x = clipped_prob(fed, clip)
            nan, zero, inf = np.isnan(x) | (x < 0), x == 0, x == np.inf
        elif space == "log_prob":
            nan, zero, inf = np.isnan(fed), fed == -np.inf, fed == np.inf
        else:
            row_bad = np.any(np.isnan(fed) | (fed == np.inf), axis=-1, keepdims=True)
            row_bad |= ~np.any(np.isfinite(fed), axis=-1, keepdims=True)
            nan = np.broadcast_to(row_bad, fed.shape)
            zero, inf = (fed == -np.inf) & ~nan, np.zeros(fed.shape, bool)
        if clip is not None and space != "prob":  # 0 becomes the bound, +inf becomes 1
            zero, inf = np.zeros(fed.shape, bool), np.zeros(fed.shape, bool)
        if normalize:
            row_nan = np.any(nan, axis=-1, keepdims=True)
            row_inf = np.any(inf, axis=-1, keepdims=True)
            row_zero = np.all(zero, axis=-1, keepdims=True)
            nan = np.broadcast_to(row_nan | row_zero, fed.shape) | (row_inf & inf)
            zero = (zero | (row_inf & ~inf)) & ~nan
            inf = np.zeros(fed.shape, bool)
    return Flags(np.asarray(nan), np.asarray(zero), np.asarray(inf))


def _masked(x: Dw, keep: np.ndarray, fill: float = 1.0) -> Dw:
    return Dw(np.where(keep, x.hi, fill), np.where(keep, x.lo, 0.0), np.where(keep, x.err, 0.0))


def side(fed: np.ndarray, space: str, clip: float | None, normalize: bool, f: Flags) -> tuple[Dw, Dw]:
    """(p, log p) as bounded double-words; meaningful where `f.regular` (dummies elsewhere)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if space == "prob":
            x = clipped_prob(fed, clip)
            p = dw.exact(np.where(f.regular, x, 1.0))
            log = dw.log(p)
        elif space == "log_prob":
            finite = np.isfinite(fed)
            log = dw.exact(np.where(finite, fed, 0.0))
            p = dw.exp(log)
        else:
            p, log = _softmax(fed)
        if clip is not None and space != "prob":
            p = _clip(p, clip, fed, space)
            log = dw.log(p)
        if normalize:
            live = f.regular
            mass = dw.total(_masked(p, live, 0.0))
            p = dw.div(p, Dw(*(np.broadcast_to(a[..., None], fed.shape) for a in mass)))
            log = dw.log(_masked(p, live))
        return _masked(p, f.regular), _masked(log, f.regular, 0.0)


def _softmax(fed: np.ndarray) -> tuple[Dw, Dw]:
    if fed.shape[-1] == 0:  # no classes: nothing to normalise
        return dw.exact(np.zeros(fed.shape)), dw.exact(np.zeros(fed.shape))
    finite = np.isfinite(fed)
    x = np.where(finite, fed, -np.inf)
    has = finite.any(axis=-1, keepdims=True)
    top_index = np.argmax(np.where(finite, x, -np.inf), axis=-1)[..., None]
    top = np.where(has, np.take_along_axis(np.where(finite, fed, 0.0), top_index, axis=-1), 0.0)
    d_hi, d_lo = dw.two_sum(np.where(finite, fed, 0.0), -top)  # x_i - x_t, exactly
    d = Dw(d_hi, d_lo, np.zeros_like(d_hi))
    others = finite & (np.arange(fed.shape[-1]) != top_index)
    ratio = _masked(dw.exp(d), others, 0.0)  # exp(x_i - x_t)
    mass = dw.total(ratio)  # S: the other classes against the top one
    lse = Dw(*(np.broadcast_to(a[..., None], fed.shape) for a in dw.log1p(mass)))
    log = dw.sub(_masked(d, others, 0.0), lse)
    one = dw.exact(np.ones(mass.hi.shape))
    share = Dw(*(np.broadcast_to(a[..., None], fed.shape) for a in dw.div(one, dw.add(one, mass))))  # 1/(1+S)
    top = np.arange(fed.shape[-1]) == top_index
    p = dw.mul(Dw(np.where(top, 1.0, ratio.hi), np.where(top, 0.0, ratio.lo), np.where(top, 0.0, ratio.err)), share)
    return p, log


def _clip(p: Dw, clip: float, fed: np.ndarray, space: str) -> Dw:
    """Clip to [clip, 1]: 1-Lipschitz, so an input's bound carries over; zeros and +inf map to the ends."""
    below = (p.hi < clip) | ((p.hi == clip) & (p.lo < 0))
    above = (p.hi > 1) | ((p.hi == 1) & (p.lo > 0))
    zero = fed == -np.inf
    over = (fed == np.inf) if space == "log_prob" else np.zeros(fed.shape, bool)
    hi = np.where(below | zero, clip, np.where(above | over, 1.0, p.hi))
    lo = np.where(below | zero | above | over, 0.0, p.lo)
    err = np.where(zero | over, 0.0, p.err)
    return Dw(hi, lo, err)


# --------------------------------------------------------------------------- terms


def same_terms(p_fed: np.ndarray, q_fed: np.ndarray, spec) -> np.ndarray:
    """Where P and Q are the same number read the same way, elementwise: the term is exactly 0."""
    if spec.p_space != spec.q_space or spec.p_space == "logits" or spec.normalize:
        return np.zeros(np.broadcast_shapes(np.shape(p_fed), np.shape(q_fed)), bool)
    return np.asarray(p_fed == q_fed)


def term_specials(
    pf: Flags, qf: Flags, spec, generalized: bool, same: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(special, value, plus_q): where a term is decided by the zero conventions (or by P = Q), its
    value; `plus_q` marks p = 0 < q under the generalized term, whose value is (0 or NaN) + q."""
    n = np.nan
    nan = pf.nan | qf.nan
    both = pf.zero & qf.zero & ~nan
    p_zero = pf.zero & ~qf.zero & ~nan
    q_zero = qf.zero & ~pf.zero & ~nan
    p_inf = pf.inf & ~nan & ~qf.zero
    q_inf = qf.inf & ~nan & ~pf.zero & ~pf.inf
    value = np.zeros(nan.shape)
    value = np.where(both, n if spec.zero_both == "nan" else 0.0, value)
    value = np.where(p_zero, n if spec.zero_p == "nan" else 0.0, value)
    value = np.where(q_zero, n if spec.zero_q == "nan" else np.inf, value)
    value = np.where(p_inf, np.where(qf.inf, n, np.inf), value)
    value = np.where(q_inf, n if generalized else -np.inf, value)  # p (log p - inf) [- p + inf]
    value = np.where(nan, n, value)
    special = nan | both | p_zero | q_zero | p_inf | q_inf
    if same is not None:
        equal = same & pf.regular & qf.regular  # p (log p - log p) [- p + p] = 0 exactly
        special, value = special | equal, np.where(equal, 0.0, value)
    plus_q = p_zero & generalized & ~qf.inf
    with np.errstate(invalid="ignore"):
        value = np.where(p_zero & generalized & qf.inf, value + np.inf, value)
    return special, value, plus_q


def terms(p: Dw, lp: Dw, q: Dw, lq: Dw, pf: Flags, qf: Flags, spec, same: np.ndarray | None = None) -> Dw:
    generalized = spec.elementwise == "p*log(p/q)-p+q"
    special, value, plus_q = term_specials(pf, qf, spec, generalized, same)
    t = dw.mul(p, dw.sub(lp, lq))
    if generalized:
        t = dw.add(dw.sub(t, p), q)
    t = Dw(np.where(plus_q, q.hi, t.hi), np.where(plus_q, q.lo, t.lo), np.where(plus_q, q.err, t.err))
    t = Dw(np.where(plus_q, t.hi + value, t.hi), t.lo, t.err)  # NaN + q stays NaN, 0 + q is q
    plain = special & ~plus_q
    return Dw(np.where(plain, value, t.hi), np.where(plain | np.isnan(t.hi), 0.0, t.lo), np.where(plain, 0.0, t.err))


# --------------------------------------------------------------------------- reductions


def _parts(t: Dw) -> tuple[np.ndarray, Dw]:
    """(exact special values, finite part): a non-finite value with a finite bound is an exact
    special; one with an infinite bound overflowed inside a chain and is left to `arb`."""
    special = ~np.isfinite(t.hi) & np.isfinite(t.err)
    unknown = ~np.isfinite(t.hi) & ~special
    finite = Dw(
        np.where(special | unknown, 0.0, t.hi), np.where(special | unknown, 0.0, t.lo), np.where(special, 0.0, t.err)
    )
    return np.where(special, t.hi, 0.0), finite


def sum_last(t: Dw) -> Dw:
    """Sum over the last axis with IEEE rules for specials (NaN wins; +inf and -inf make NaN)."""
    specials, finite = _parts(t)
    s = dw.total(finite)
    sp = np.sum(specials, axis=-1)
    decided = sp != 0  # NaN != 0 too
    return Dw(np.where(decided, sp, s.hi), np.where(decided, 0.0, s.lo), np.where(decided, 0.0, s.err))


def scale(t: Dw, w: Dw) -> Dw:
    """t * w elementwise (w a bounded double-word: weights, 1/divisor), specials by IEEE rules."""
    specials, finite = _parts(t)
    with np.errstate(invalid="ignore"):
        prod = dw.mul(finite, w)
        sp = specials * w.hi
    decided = specials != 0
    return Dw(np.where(decided, sp, prod.hi), np.where(decided, 0.0, prod.lo), np.where(decided, 0.0, prod.err))


def divide(t: Dw, d: Dw) -> Dw:
    specials, finite = _parts(t)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = dw.div(finite, d)
        sp = specials / d.hi
    decided = (specials != 0) | (d.hi == 0)
    out = Dw(
        np.where(decided, np.where(d.hi == 0, np.nan, sp), q.hi),
        np.where(decided, 0.0, q.lo),
        np.where(decided, 0.0, q.err),
    )
    return out


# --------------------------------------------------------------------------- analytic gradients


def gradient(fed: np.ndarray, p: Dw, lp: Dw, q: Dw, lq: Dw, pf: Flags, qf: Flags, spec, wrt: str) -> Dw:
    """d term / d argument at the fed values, before the reduction's scaling. Special inputs decide
    the value exactly, in this order: NaN, clipped away (0), p = 0, q = 0, an infinite p or q."""
    generalized = spec.elementwise == "p*log(p/q)-p+q"
    space = spec.p_space if wrt == "p" else spec.q_space
    pz, qz = _zeroed(p, pf.zero), _zeroed(q, qf.zero)
    if space == "logits":
        mass = dw.total(pz)
        g = dw.sub(dw.mul(qz, Dw(*(np.broadcast_to(a[..., None], fed.shape) for a in mass))), pz)
        undefined = np.broadcast_to(np.any(pf.nan, axis=-1, keepdims=True), fed.shape) | qf.nan
        return _decided(g, undefined, np.full(fed.shape, np.nan))
    one = dw.exact(np.ones(fed.shape))
    if wrt == "q" and space == "prob":
        g = dw.neg(dw.div(pz, qz))
        g = dw.add(g, one) if generalized else g
    elif wrt == "q":
        g = dw.sub(qz, pz) if generalized else dw.neg(pz)
    elif space == "prob":
        g = dw.sub(lp, lq)
        g = g if generalized else dw.add(g, one)
    else:
        inner = dw.sub(lp, lq)
        g = dw.mul(pz, inner if generalized else dw.add(inner, one))
    special, value = gradient_rules(fed, p, lp, q, lq, pf, qf, spec, wrt)
    return _decided(g, special, value)


def gradient_rules(fed, p: Dw, lp: Dw, q: Dw, lq: Dw, pf: Flags, qf: Flags, spec, wrt: str):
    """(special, value): the elements whose derivative special inputs decide, and its value there
    (not for logits, whose only special is a NaN row)."""
    generalized = spec.elementwise == "p*log(p/q)-p+q"
    space = spec.p_space if wrt == "p" else spec.q_space
    with np.errstate(invalid="ignore"):
        special, value = pf.nan | qf.nan | np.isnan(fed), np.full(fed.shape, np.nan)
        if space == "prob" and spec.clip_epsilon is not None:
            clipped = ~((spec.clip_epsilon <= fed) & (fed <= 1.0))
            special, value = _rule(special, value, clipped, 0.0)
    if wrt == "q" and space == "prob":
        special, value = _rule(special, value, pf.zero, 1.0 if generalized else 0.0)
        special, value = _rule(special, value, qf.zero, -np.inf)
    elif wrt == "p" and space == "prob":
        special, value = _rule(special, value, pf.zero, -np.inf)
        special, value = _rule(special, value, qf.zero, np.inf)
    elif wrt == "p":
        special, value = _rule(special, value, pf.zero, 0.0)
        special, value = _rule(special, value, qf.zero, np.inf)
    infinite = (pf.inf | qf.inf) & ~special
    if infinite.any():  # inf meets finite values only through +, -, *, /: the float64 result is exact
        limit = _with_infinities(p, lp, q, lq, pf, qf, space, wrt, generalized)
        special, value = _rule(special, value, infinite, limit)
    return special, value


def _zeroed(x: Dw, zero: np.ndarray) -> Dw:
    return Dw(np.where(zero, 0.0, x.hi), np.where(zero, 0.0, x.lo), np.where(zero, 0.0, x.err))


def _rule(special: np.ndarray, value: np.ndarray, where: np.ndarray, result) -> tuple[np.ndarray, np.ndarray]:
    """Apply a special-value rule where no earlier rule applied."""
    fresh = where & ~special
    return special | fresh, np.where(fresh, result, value)


def _with_infinities(p, lp, q, lq, pf, qf, space, wrt, generalized) -> np.ndarray:
    P, Q = np.where(pf.inf, np.inf, p.hi), np.where(qf.inf, np.inf, q.hi)
    LP, LQ = np.where(pf.inf, np.inf, lp.hi), np.where(qf.inf, np.inf, lq.hi)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if wrt == "q":
            if space == "prob":
                return -P / Q + (1.0 if generalized else 0.0)
            return Q - P if generalized else -P
        inner = LP - LQ + (0.0 if generalized else 1.0)
        return inner if space == "prob" else P * inner


def _decided(g: Dw, special: np.ndarray, value: np.ndarray) -> Dw:
    return Dw(np.where(special, value, g.hi), np.where(special, 0.0, g.lo), np.where(special, 0.0, g.err))
