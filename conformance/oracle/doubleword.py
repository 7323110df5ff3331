"""Vectorized double-word ("double-double") arithmetic that carries a rigorous error bound.

A `Dw` is a NumPy array of values `hi + lo` (about 106 significant bits) with `err`, an upper bound on
|hi + lo - exact| for each element, where "exact" is the real number the computation stands for.
Every operation adds its own rounding error to the bounds it propagates, so the bound that comes out
of a chain of operations is proven a priori, with no Python loop over elements.

The per-operation bounds are those proven by Joldes, Muller and Popescu ("Tight and rigorous error
bounds for basic building blocks of double-word arithmetic", ACM TOMS 44(2), 2017): at most 15u^2
relative for the algorithms used here (u = 2^-53), taken as EPS = 2^-100 (64u^2, a fourfold margin,
which also covers the FMA-free products of Dekker's algorithm). Where a result or an intermediate
product underflows, an operation may also err by a few units of the least subnormal: ETA_OP per
operation, taken generously. Logarithm and exponential are argument reduction against tables built
in `arb` (their representation error is measured there, not assumed; mpmath where python-flint
is not installed) plus truncated series whose
remainder is bounded explicitly. Bounds are themselves computed in float64 and rounded up by `up`.

Elements that are not ordinary finite numbers are the caller's business: each caller decides
special values (zeros, infinities, NaN) by masks, and feeds dummies here. An element whose bound
cannot be established (an overflow inside a chain, say) gets `err = inf`, which sends it to `arb`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

EPS = 2.0**-100  # relative error of one double-word operation (proven: <= 15 u^2)
ETA = 2.0**-1074  # the least float64 subnormal
ETA_OP = 2.0**-1066  # absolute error an operation may add through underflow (256 ETA; a quotient: ETA_OP/|y|)
_TINY = 2.0**-890  # below this a product's or quotient's error terms may underflow (2^-1022 * 2^106, with room)
_MARGIN = 1.0 + 2.0**-40  # covers the rounding (and a few-ulp libm error) in computing a bound
_SPLIT = 134217729.0  # 2^27 + 1 (Veltkamp)
# Elements per block of a large elementwise operation: a chain of NumPy passes over a block's temporaries stays
# in the CPU's caches. Measured on the project's machine, exp and log of 262,144 elements take about half the
# time in blocks of 8,192 to 32,768 elements as in one piece (at 1,024 the Python cost per block shows).
BLOCK = 16384


class Dw(NamedTuple):
    hi: np.ndarray
    lo: np.ndarray
    err: np.ndarray  # upper bound on |hi + lo - exact|

    @property
    def magnitude(self) -> np.ndarray:
        return np.abs(self.hi)


def up(x) -> np.ndarray:
    """A float64 bound rounded up past its own rounding errors (and past float64's floor)."""
    return np.asarray(x, np.float64) * _MARGIN + ETA


def exact(x) -> Dw:
    x = np.asarray(x, np.float64)
    return Dw(x, np.zeros_like(x), np.zeros_like(x))


# --------------------------------------------------------------------------- error-free transformations


def two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _fast_two_sum(a, b):
    s = a + b
    return s, b - (s - a)


def _split(a):
    """Veltkamp's split (exact for |a| < 2^996; beyond, it overflows to NaN, and so does the bound)."""
    c = _SPLIT * a
    high = c - (c - a)
    return high, a - high


def two_prod(a, b):
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


def _lost(*errs) -> np.ndarray:
    """What rounding may lose when a product or quotient of bounds falls below the least subnormal:
    2 ETA wherever an input's bound is not zero."""
    nonzero = errs[0] != 0
    for e in errs[1:]:
        nonzero = nonzero | (e != 0)
    return np.where(nonzero, 2 * ETA, 0.0)


def _settle(hi, lo, err) -> Dw:
    """The bound rounded up. Every operation's bound includes EPS |hi|, so an element that overflowed
    (inf) or met an invalid operation (NaN) inside a chain carries an inf or NaN bound: it is never
    mistaken for an exact special value, and `arb` recomputes it."""
    return Dw(hi, lo, err * _MARGIN)


def _in_blocks(operation: Callable[..., Dw]) -> Callable[..., Dw]:
    """An elementwise operation on large arrays, run block by block (BLOCK elements, a Python loop over
    blocks, not elements). Every operation here is elementwise, so each element's value and bound are the
    ones the whole-array call gives, bit for bit."""

    @functools.wraps(operation)
    def run(*args: Dw) -> Dw:
        if all(np.size(arg.hi) <= 2 * BLOCK for arg in args):
            return operation(*args)
        shape = np.broadcast_shapes(*(np.shape(part) for arg in args for part in arg))
        flat = [Dw(*(np.broadcast_to(part, shape).reshape(-1) for part in arg)) for arg in args]
        size = int(np.prod(shape, dtype=np.int64))
        pieces = [
            operation(*(Dw(*(part[start : start + BLOCK] for part in arg)) for arg in flat))
            for start in range(0, size, BLOCK)
        ]
        return Dw(*(np.concatenate(column).reshape(shape) for column in zip(*pieces)))

    return run


# --------------------------------------------------------------------------- arithmetic with bounds


@_in_blocks
def add(x: Dw, y: Dw) -> Dw:
    """Joldes-Muller-Popescu Algorithm 6 (AccurateDWPlusDW): relative error <= 3u^2 of the exact sum
    (with gradual underflow too: a sum that lands among the subnormals is exact)."""
    with np.errstate(invalid="ignore", over="ignore"):
        s, e = two_sum(x.hi, y.hi)
        t, f = two_sum(x.lo, y.lo)
        s, e = _fast_two_sum(s, e + t)
        hi, lo = _fast_two_sum(s, e + f)
        return _settle(hi, lo, x.err + y.err + EPS * np.abs(hi))


def neg(x: Dw) -> Dw:
    return Dw(-x.hi, -x.lo, x.err)


def sub(x: Dw, y: Dw) -> Dw:
    return add(x, neg(y))


@_in_blocks
def mul(x: Dw, y: Dw) -> Dw:
    """DWTimesDW (Algorithms 10-12) without FMA; propagated error |x||dy| + |y||dx| + |dx||dy|."""
    with np.errstate(invalid="ignore", over="ignore"):
        ch, cl1 = two_prod(x.hi, y.hi)
        cl2 = x.hi * y.lo + x.lo * y.hi
        hi, lo = _fast_two_sum(ch, cl1 + cl2)
        ax, ay = np.abs(x.hi) + np.abs(x.lo), np.abs(y.hi) + np.abs(y.lo)
        # Dekker's product is exact unless its error term underflows (Boldo 2006: then it errs by at most
        # 3.5 ETA); a product with an exact zero factor is exactly zero
        underflow = np.where((np.abs(hi) < _TINY) & (x.hi != 0) & (y.hi != 0), ETA_OP, 0.0)
        err = ax * y.err + ay * x.err + x.err * y.err + EPS * np.abs(hi) + underflow + _lost(x.err, y.err)
        return _settle(hi, lo, np.where(_exactly_zero(x, y) | _exactly_zero(y, x), 0.0, err))


def _exactly_zero(x: Dw, y: Dw) -> np.ndarray:
    """Where `x` is exactly zero and `y` certainly finite: their product (and x / y) is exactly zero, with
    nothing lost to underflow, whatever y's own bound."""
    return (x.hi == 0) & (x.lo == 0) & (x.err == 0) & np.isfinite(y.hi) & np.isfinite(y.err)


def mul_float(x: Dw, b: np.ndarray) -> Dw:
    """Times an exact float64 (DWTimesFP1: relative error <= 2u^2)."""
    b = np.asarray(b, np.float64)
    return mul(x, exact(np.broadcast_to(b, np.broadcast_shapes(b.shape, x.hi.shape))))


@_in_blocks
def div(x: Dw, y: Dw) -> Dw:
    """DWDivDW1 (Algorithm 17, with DWTimesFP1 inside; relative error <= 15u^2 + 56u^3). The inputs'
    bounds propagate through the quotient's derivative, valid while the divisor's bound stays below
    its magnitude (else the bound is inf)."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        zero = _exactly_zero(x, y)
        # scale both by the divisor's binade (exact but for underflow, covered by the ETA terms) so the
        # residual below underflows only when the quotient itself is below ~1e-292
        _, e = np.frexp(np.where(np.isfinite(y.hi) & (y.hi != 0), y.hi, 1.0))
        x = Dw(np.ldexp(x.hi, -e), np.ldexp(x.lo, -e), np.ldexp(x.err, -e) + 2 * ETA)
        y = Dw(np.ldexp(y.hi, -e), np.ldexp(y.lo, -e), np.ldexp(y.err, -e) + 2 * ETA)
        th = x.hi / y.hi
        ch, cl1 = two_prod(y.hi, th)  # (rh, rl) = DWTimesFP1(y, th)
        t, tl1 = _fast_two_sum(ch, y.lo * th)
        rh, rl = _fast_two_sum(t, tl1 + cl1)
        tl = ((x.hi - rh) + (x.lo - rl)) / y.hi
        hi, lo = _fast_two_sum(th, tl)
        ay = np.abs(y.hi) - np.abs(y.lo) * _MARGIN - y.err
        propagated = (x.err + np.abs(hi) * _MARGIN * y.err) / ay
        # an underflow in the residual x - y th errs by a few ETA, which the division by y scales up
        underflow = np.where((np.abs(hi) < _TINY) & (x.hi != 0), ETA_OP, 0.0)  # (0 / y is exactly 0)
        err = np.where(ay > 0, propagated + underflow / ay, np.inf) + EPS * np.abs(hi) + underflow + _lost(x.err, y.err)
        return _settle(hi, lo, np.where(zero & (ay > 0), 0.0, err))  # 0 / y, y certainly not 0: exactly 0


def total(x: Dw, axis: int = -1) -> Dw:
    """Pairwise sum along `axis`: log2(n) vectorized levels of `add`, each erring by EPS of its partial
    sums, so the whole errs by at most the inputs' bounds plus EPS * levels * sum |x|."""
    x = Dw(*(np.moveaxis(a, axis, -1) for a in x))
    n = x.hi.shape[-1]
    if n == 0:
        return exact(np.zeros(x.hi.shape[:-1]))
    inputs_err = np.sum(x.err, axis=-1)
    scale = np.sum(np.abs(x.hi) + np.abs(x.lo), axis=-1)
    levels = 0
    while x.hi.shape[-1] > 1:
        if x.hi.shape[-1] % 2:
            x = Dw(*(np.concatenate([a, np.zeros(a.shape[:-1] + (1,))], axis=-1) for a in x))
        pairs = Dw(*(np.zeros_like(a[..., ::2]) for a in x))
        summed = add(Dw(x.hi[..., ::2], x.lo[..., ::2], pairs.err), Dw(x.hi[..., 1::2], x.lo[..., 1::2], pairs.err))
        x = Dw(summed.hi, summed.lo, summed.err)
        levels += 1
    n_margin = 1.0 + 2.0 * n * 2.0**-53  # float64 sums of the bounds themselves err by (n-1)u at most
    err = (inputs_err + EPS * levels * scale) * n_margin * _MARGIN
    bad = ~np.isfinite(x.hi[..., 0]) | ~np.isfinite(err)
    return Dw(x.hi[..., 0], x.lo[..., 0], np.where(bad, np.inf, err))


# --------------------------------------------------------------------------- tables, measured in arb


def _table(values: list) -> tuple[np.ndarray, np.ndarray, float]:
    """(hi, lo, max relative representation error) of exact constants (arb balls: their radius counts)."""
    his, los, worst = [], [], 0.0
    for v in values:
        hi = float(v)
        lo = float(v - hi)
        rest = v - hi - lo
        rest = rest.abs_upper() if hasattr(rest, "abs_upper") else abs(rest)
        his.append(hi)
        los.append(lo)
        if v != 0:
            worst = max(worst, float(rest / abs(v)) * 2)  # (x2: |v| rounded down, the quotient's rounding)
    return np.array(his), np.array(los), worst * _MARGIN + 2.0**-200


def _tables():
    """The tables' exact values, in arb at 256 bits, or (where python-flint is not installed, as on a
    GPU image) in mpmath at 512 bits, whose few-ulp errors the 2^-200 slack of `_table` dwarfs."""
    try:
        from flint import arb, ctx
    except ImportError:
        import mpmath

        with mpmath.workprec(512):
            ln2, one = mpmath.log(2), mpmath.mpf(1)
            return _build(
                ln2,
                lambda j: mpmath.mpf(2) ** (mpmath.mpf(j) / 64),
                lambda c: mpmath.log(1 + mpmath.mpf(c) / 128),
                lambda k: one / mpmath.factorial(k),
                lambda k: one / (2 * k + 1),
            )
    old = ctx.prec
    ctx.prec = 256
    try:
        return _build(
            arb(2).log(),
            lambda j: arb(2) ** (arb(j) / 64),
            lambda c: (1 + arb(c) / 128).log(),
            lambda k: 1 / arb.fac_ui(k),
            lambda k: 1 / arb(2 * k + 1),
        )
    finally:
        ctx.prec = old


def _build(ln2, pow2, log_c, inv_fact, inv_odd):
    return (
        float(ln2),
        _table([ln2 / 64]),
        _table([ln2]),
        _table([pow2(j) for j in range(64)]),
        _table([log_c(i) for i in range(-40, 56)]),
        _table([inv_fact(k) for k in range(EXP_TERMS + 1)]),
        _table([inv_odd(k) for k in range(ATANH_TERMS + 1)]),
    )


EXP_TERMS = 13  # Taylor terms of exp(r), |r| <= 0.0055: remainder < 1e-43 relative
ATANH_TERMS = 9  # odd terms of atanh(s), s^2 <= 6.2e-5: remainder < 1e-39 relative
_LN2, _LN2_64, _LN2_DW, _POW2, _LOGC, _INV_FACT, _INV_ODD = _tables()
_EXP_TAIL = [float(1.0 / np.prod(np.arange(1, k + 1, dtype=np.float64))) for k in range(5, EXP_TERMS + 1)]
_ATANH_TAIL = [1.0 / (2 * k + 1) for k in range(2, ATANH_TERMS + 1)]
_R_MAX, _Z_MAX = 0.0056, 6.2e-5
_EXP_REMAINDER = _R_MAX ** (EXP_TERMS + 1) / 6.2e9 * 1.006  # > |r|^14/14! e^|r| for |r| <= _R_MAX (14! > 8.7e10)


def _const(table, index) -> Dw:
    """Entries of a table (an index array), or one entry as scalars (an int) that broadcast."""
    hi, lo = table[0][index], table[1][index]
    return Dw(hi, lo, np.abs(hi) * table[2])


def _tail(coeffs: list[float], x: np.ndarray, bound: float) -> tuple[np.ndarray, float]:
    """sum_k coeffs[k] x^k in plain float64 (Horner) for |x| <= bound, with an error bound: the
    rounding of n steps is at most 2n u sum |c_k| |x|^k (Higham, Accuracy and Stability, 5.1),
    coefficients rounded to float64 add u sum |c_k| |x|^k more."""
    acc = np.full(x.shape, coeffs[-1])
    for c in reversed(coeffs[:-1]):
        acc = acc * x + c
    size = sum(abs(c) * bound**k for k, c in enumerate(coeffs))
    return acc, (2 * len(coeffs) + 2) * 2.0**-53 * size


# --------------------------------------------------------------------------- exp, log, log1p


@_in_blocks
def exp(x: Dw) -> Dw:
    """e^x: x = k ln2/64 + r, e^x = 2^(k//64) * 2^((k%64)/64) * e^r."""
    with np.errstate(invalid="ignore", over="ignore"):
        low = x.hi < -760.0  # e^x < 1e-330: rounds to 0 within ETA
        high = x.hi > 710.0  # beyond float64: inf (the caller's bound says so)
        out_of_range = low | high
        edges = bool(out_of_range.any())
        xs = _masked_out(x, out_of_range) if edges else x
        k = np.rint(xs.hi * (64.0 / _LN2))
        shift = mul_float(neg(_const(_LN2_64, 0)), k)
        r = add(Dw(xs.hi, xs.lo, np.zeros_like(k)), shift)  # the input's own error enters below
        series = _exp_series(r)
        j = (k % 64).astype(int)
        scaled = mul(series, _const(_POW2, j))
        m = ((k - j) // 64).astype(int)
        hi, lo = np.ldexp(scaled.hi, m), np.ldexp(scaled.lo, m)
        value = np.abs(hi) + np.abs(lo)
        # series and table errors relative to e^r 2^(j/64) >= 0.99, the truncation, r's own error
        rel = scaled.err * 1.02 + _EXP_REMAINDER + r.err * 1.01
        err = value * rel + np.where(value < 2.0**-1020, 4 * ETA, 0.0)  # (ldexp into the subnormals: ETA a part)
        if np.any(xs.err):  # the input's error: |e^(x+d) - e^x| <= e^x (e^|d| - 1)
            err = err + (value * _MARGIN + err) * np.expm1(xs.err * _MARGIN) * _MARGIN + _lost(xs.err)
        if edges:
            hi = np.where(low, 0.0, np.where(high, np.inf, hi))
            lo = np.where(out_of_range, 0.0, lo)
            err = np.where(low, up(np.exp(x.hi + np.abs(x.lo) + x.err)) + ETA, np.where(high, np.inf, err))
        return _settle(hi, lo, err)


def _masked_out(x: Dw, where: np.ndarray) -> Dw:
    return Dw(np.where(where, 0.0, x.hi), np.where(where, 0.0, x.lo), np.where(where, 0.0, x.err))


def _exp_series(r: Dw) -> Dw:
    """sum_{k<=13} r^k/k! for |r| <= 0.0055: Horner in double-word for k <= 4, the tail
    sum_{k>=5} r^(k-5) k!/... in float64, its error scaled down by |r|^5 < 5.1e-12."""
    rh = np.clip(r.hi, -_R_MAX, _R_MAX)
    tail, rounding = _tail(_EXP_TAIL, rh, _R_MAX)
    tail_err = rounding + (np.abs(r.lo) + r.err) * 0.01  # |d tail/dr| <= 1/720 + ... < 0.01
    tail_err = np.where(np.abs(r.hi) <= _R_MAX, tail_err, np.inf)  # outside the range the bounds assume
    acc = Dw(tail, np.zeros_like(tail), tail_err)
    for k in (4, 3, 2, 1, 0):
        acc = add(mul(acc, r), _const(_INV_FACT, k))
    return acc


def _atanh2(s: Dw) -> Dw:
    """2 atanh(s) = 2 s (1 + z/3 + z^2 T(z)), z = s^2 <= 6.2e-5 (|s| <= 1/127): the double-word part is
    s + s z/3; T(z) = 1/5 + z/7 + ... runs in float64, its error scaled down by |s| z^2 <= 3e-11 |s|."""
    z = mul(s, s)
    zh = np.minimum(np.abs(z.hi), _Z_MAX)
    tail, tail_err = _tail(_ATANH_TAIL, zh, _Z_MAX)
    tail_err = tail_err + (np.abs(z.lo) + z.err) * 0.15  # |dT/dz| <= 1/7 + 2z/9 + ... < 0.15
    zabs = np.abs(z.hi) + z.err
    remainder = zabs ** len(_ATANH_TAIL) / (2 * len(_ATANH_TAIL) + 5) / (1 - zabs)
    w = tail * z.hi  # z T(z), one more rounding
    w_err = (tail_err + remainder) * np.abs(z.hi) + np.abs(tail) * (np.abs(z.lo) + z.err) + 2.0**-52 * np.abs(w)
    w_err = np.where(np.abs(z.hi) <= _Z_MAX, w_err, np.inf)  # outside the range the bounds assume
    inner = add(_const(_INV_ODD, 1), Dw(w, np.zeros_like(w), w_err))
    series = add(s, mul(mul(s, z), inner))
    return Dw(2 * series.hi, 2 * series.lo, 2 * series.err * _MARGIN)


@_in_blocks
def log(x: Dw) -> Dw:
    """ln x for x > 0: x = 2^e m, m = c (1 + t) with c = 1 + i/128 from a table, ln(m/c) = 2 atanh(s)."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        positive = x.hi > 0
        xh = np.where(positive, x.hi, 1.0)
        mant, e = np.frexp(xh)
        small = mant < np.sqrt(0.5)
        mant, e = np.where(small, 2 * mant, mant), np.where(small, e - 1, e)
        lo = np.ldexp(np.where(positive, x.lo, 0.0), -e)
        i = np.rint((mant - 1.0) * 128.0)
        c = 1.0 + i / 128.0
        num_hi, num_lo = two_sum(mant - c, lo)
        num = Dw(num_hi, num_lo, np.where(e > 0, ETA_OP, 0.0))  # (lo scaled down may underflow)
        den_hi, den_lo = two_sum(mant, c)
        den = add(Dw(den_hi, den_lo, np.zeros(mant.shape)), exact(lo))
        part = _atanh2(div(num, den))
        logc = _const(_LOGC, (i + 40).astype(int))
        result = add(add(mul_float(_const(_LN2_DW, 0), e.astype(np.float64)), logc), part)
        # the input's error: |ln(x+d) - ln x| <= |d| / (x - |d|)
        room = xh - np.abs(x.lo) * _MARGIN - x.err
        propagated = np.where(room > 0, x.err / room, np.inf) * _MARGIN + _lost(x.err)
        return _settle(result.hi, result.lo, np.where(positive, result.err + propagated, np.inf))


@_in_blocks
def log1p(s: Dw) -> Dw:
    """ln(1 + s) for s >= 0, accurate relative to the result however small s is (a row's other classes'
    mass against its dominant class: -ln(1 + s) is the dominant class's log-probability)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        tiny = s.hi < 1.0 / 64
        two = exact(np.full(s.hi.shape, 2.0))
        ratio = div(s, add(two, s))  # s/(2+s) <= 1/128 on this branch
        series = _atanh2(Dw(*(np.where(tiny, a, 0.0) for a in ratio)))
        general = log(add(exact(np.ones(s.hi.shape)), s))
        return Dw(*(np.where(tiny, a, b) for a, b in zip(series, general)))


def to_float(x: Dw) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(value, low, bound): value + low is hi + lo re-normalised; bound covers it."""
    with np.errstate(invalid="ignore"):
        hi, lo = _fast_two_sum(x.hi, x.lo)
    # a NaN bound (0 * inf inside a chain) is no bound at all
    return hi, np.where(np.isfinite(hi), lo, 0.0), np.where(np.isnan(x.err), np.inf, x.err)
