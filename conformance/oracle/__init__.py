"""The certified oracle: KL(P||Q) from the exact values an API was fed, with a rigorous error bound.

Inputs arrive as arrays holding exactly the binary values the API received; they are interpreted in
their declared space (probabilities, log-probabilities or logits), optionally clipped and
normalised, combined elementwise and reduced. Every expected value comes as `value + low` (a float64
pair) and `bound`, a proven upper bound on |value + low - exact| for each output element:

- first, for whole arrays at once, in double-word arithmetic (`doubleword`, `kl`) whose error is
  bounded a priori, operation by operation (about 2^-95 relative in ordinary cases);
- then, for the output elements whose bound is larger than a caller asks (`bound_at_most`, or
  `Expectation.refine`), in `arb` ball arithmetic (`ball`) at rising precision until it is met.

Special values (zeros of either sign, infinities, NaN, the zero conventions) are decided exactly
from the fed values and carry a bound of 0. `provenance` says how the values were certified.

The oracle never imports a framework.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np

from . import ball, cache, kl
from . import doubleword as dw
from .doubleword import Dw

DIGITS = 50  # working precision of the mpmath closed forms of distribution families
DOUBLE_WORD = "double-word float64 pairs (a priori bound)"

SPACES = ("prob", "log_prob", "logits")
ELEMENTWISE = ("p*log(p/q)", "p*log(p/q)-p+q")
REDUCTIONS = ("none", "per_row", "sum", "mean_all", "mean_batch", "mean_weighted")
BATCH_DIVISORS = ("dim0", "rows", "batch")


@dataclass(frozen=True)
class Spec:
    """Everything besides the inputs that decides the expected value (hashable: a cache key)."""

    p_space: str = "prob"
    q_space: str = "prob"
    elementwise: str = "p*log(p/q)"
    reduction: str = "per_row"
    # mean_batch divides by: input.shape[0] even for 1-D input ("dim0", torch's batchmean), the number
    # of rows ("rows", Keras' sum_over_batch_size), or shape[0] of a batch and 1 for one 1-D row ("batch")
    batch_divisor: str = "dim0"
    clip_epsilon: float | None = None  # both arguments clipped to [eps, 1] in probability space
    normalize: bool = False  # rows rescaled to sum to 1 before the KL
    zero_p: str = "0"  # term where p = 0 < q: "0" or "nan"
    zero_both: str = "0"  # term where p = q = 0: "0" or "nan"
    zero_q: str = "inf"  # term where q = 0 < p: "inf", "nan" or "finite"


@dataclass(frozen=True)
class Expectation:
    value: np.ndarray  # float64, the API's output shape: the exact value rounded (NaN, +-inf exactly)
    magnitude: np.ndarray  # sum of |p| (|log p| + |log q| + 1) over the terms feeding each output element
    terms: int  # how many elementwise terms are summed into one output element
    log_scale: np.ndarray | float = 0.0  # sum of (|log p| + |log q| + 1): scales errors from gradual underflow
    low: np.ndarray | float = 0.0  # value + low is the oracle's value to about 106 bits
    bound: np.ndarray | None = None  # |value + low - exact| <= bound per element; None: not certified
    provenance: str = ""  # how the values were certified
    refine: Callable[[np.ndarray], Expectation] | None = field(default=None, compare=False, repr=False)

    def certified_to(self, need) -> Expectation:
        """The same expectation with every element's bound at most `need` where the oracle can reach it
        (not below float64's own resolution of value + low, one subnormal at most; for a gradient
        summed over a broadcast axis, not below about 2^-98 of it, the double-word sum after arb)."""
        if self.bound is None or self.refine is None or not np.any(np.asarray(self.bound) > need):
            return self
        return self.refine(np.broadcast_to(np.asarray(need, np.float64), np.shape(self.value)))


@dataclass(frozen=True)
class Gradient:
    value: np.ndarray  # d(sum of the outputs) / d(argument), float64, the argument's shape
    magnitude: np.ndarray  # scale of the rounding error in each element (for tolerances)
    terms: int  # terms summed into one element (the class width for logits, else 1)
    log_scale: np.ndarray | float = 0.0  # (|log p| + |log q| + 1) x scale: how far an underflowed exp carries
    low: np.ndarray | float = 0.0
    bound: np.ndarray | None = None
    provenance: str = ""
    refine: Callable[[np.ndarray], Expectation] | None = field(default=None, compare=False, repr=False)

    def expectation(self) -> Expectation:
        """The same numbers in the shape the judge takes."""
        return Expectation(
            self.value, self.magnitude, self.terms, self.log_scale, self.low, self.bound, self.provenance, self.refine
        )

    def summed_to(self, shape: tuple) -> Gradient:
        """The gradient a broadcast input collects: summed over the axes it was broadcast along, in
        double-word arithmetic, so the sum keeps a certified bound."""
        axes = tuple(i for i, (a, b) in enumerate(zip(self.value.shape, shape)) if a != b)
        count = int(np.prod([self.value.shape[i] for i in axes]))
        value, low, bound = _sum_axes(self, axes)
        refine = None
        if self.refine is not None:
            unsummed = self.refine

            def refine(need: np.ndarray) -> Expectation:
                sharp = unsummed(np.broadcast_to(np.asarray(need) / max(count, 1), self.value.shape))
                v, lo, b = _sum_axes(sharp, axes)
                return Expectation(
                    v,
                    sharp.magnitude.sum(axis=axes, keepdims=True),
                    sharp.terms * count,
                    np.sum(np.broadcast_to(sharp.log_scale, self.value.shape), axis=axes, keepdims=True),
                    lo,
                    b,
                    sharp.provenance,
                )

        return Gradient(
            value,
            self.magnitude.sum(axis=axes, keepdims=True),
            self.terms * count,
            np.sum(np.broadcast_to(self.log_scale, self.value.shape), axis=axes, keepdims=True),
            low,
            bound,
            self.provenance,
            refine,
        )


def _sum_axes(x, axes: tuple) -> tuple:
    """(value, low, bound) of x (value, low, bound fields) summed over `axes`, keeping dimensions."""
    shape = np.shape(x.value)
    parts = [np.broadcast_to(np.asarray(a, np.float64), shape) for a in (x.value, x.low, x.bound)]
    kept = [i for i in range(len(shape)) if i not in axes]
    moved = [np.transpose(a, kept + list(axes)).reshape([shape[i] for i in kept] + [-1]) for a in parts]
    summed = kl.sum_last(Dw(*moved))
    out_shape = [1 if i in axes else n for i, n in enumerate(shape)]
    return tuple(np.reshape(a, out_shape) for a in _certified(summed))


# --------------------------------------------------------------------------- expected values


@dataclass(frozen=True)
class _Terms:
    terms: Dw  # elementwise terms, input shape
    magnitude: np.ndarray
    log_scale: np.ndarray


def expected(
    p_fed: np.ndarray,
    q_fed: np.ndarray,
    spec: Spec,
    weights: np.ndarray | None = None,
    bound_at_most: float | np.ndarray | None = None,
) -> Expectation:
    """The exact result of the convention `spec` applied to the fed values (class axis last), certified;
    with `bound_at_most`, refined until every element's bound is at most that (where reachable)."""
    p_fed, q_fed = np.asarray(p_fed), np.asarray(q_fed)
    inputs = cache.digest(p_fed, q_fed)
    key = cache.digest_text(inputs, repr(spec), cache.digest(weights) if weights is not None else "")
    hit = _RESULTS.get(key)
    if hit is None:
        terms_key = (inputs, replace(spec, reduction="none"))
        terms = _TERMS.get(terms_key)
        if terms is None:
            terms = _compute_terms(np.asarray(p_fed, np.float64), np.asarray(q_fed, np.float64), spec)
            _TERMS.put(terms_key, terms, int(np.size(terms.magnitude)))
        hit = _reduce(terms, p_fed.shape, spec, weights)
        _RESULTS.put(key, hit, int(np.size(hit.magnitude)) * max(hit.terms, 1))
    weights64 = None if weights is None else np.asarray(weights, np.float64)
    exp = replace(
        hit,
        refine=partial(_refined, hit, np.asarray(p_fed, np.float64), np.asarray(q_fed, np.float64), spec, weights64),
    )
    return exp if bound_at_most is None else exp.certified_to(bound_at_most)


def output_shape(shape: tuple, spec: Spec) -> tuple:
    """The shape of `expected`'s value for fed values of `shape` (class axis last) under `spec`, known before
    any evaluation: a caller comparing many conventions with one observation skips those that cannot match."""
    if spec.reduction == "none":
        return tuple(shape)
    return tuple(shape[:-1]) if spec.reduction == "per_row" else ()


def _sides(p_fed: np.ndarray, q_fed: np.ndarray, spec: Spec):
    return (
        _side(p_fed, spec.p_space, spec.clip_epsilon, spec.normalize),
        _side(q_fed, spec.q_space, spec.clip_epsilon, spec.normalize),
    )


def _side(fed: np.ndarray, space: str, clip: float | None, normalize: bool) -> tuple[Dw, Dw, kl.Flags]:
    """(p, log p, flags) of one argument, computed once per fed values and reading. A side depends on
    nothing else: the conventions that differ in their zeros, elementwise term, argument order, reduction
    or divisor (every candidate inference weighs, every field a diagnosis tries, a value and a gradient)
    share it, and its logarithms and exponentials are most of the oracle's double-word work. Held
    read-only: every caller gets the same arrays."""
    fed = np.asarray(fed, np.float64)  # (exact: a side is computed in float64 whatever the fed dtype)
    key = (cache.digest(fed), space, clip, normalize)
    hit = _SIDES.get(key)
    if hit is None:
        distinct = _distinct(fed, space, normalize)
        values = fed if distinct is None else distinct[0]
        f = kl.flags(values, space, clip, normalize)
        p, lp = kl.side(values, space, clip, normalize, f)
        if distinct is not None:  # each element's p, log p and flags: those of its value
            at = distinct[1]
            p, lp = (Dw(*(a[at].reshape(fed.shape) for a in x)) for x in (p, lp))
            f = kl.Flags(*(a[at].reshape(fed.shape) for a in (f.nan, f.zero, f.inf)))
        hit = (p, lp, f)
        _read_only(*p, *lp, f.nan, f.zero, f.inf)
        _SIDES.put(key, hit, int(np.size(fed)))
    return hit


DISTINCT_MIN = 1 << 14  # elements from which a side fed in few significant bits is computed per distinct value
_BELOW_11_BITS = np.uint64((1 << 42) - 1)  # float64 mantissa bits below the 11 significant ones of a float16


def _distinct(fed: np.ndarray, space: str, normalize: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """(distinct values, where each element's is) of a large side whose values have at most 11 significant
    bits (fed in float16 or bfloat16: at most 65,536 distinct values, and a 262,144-class row of probabilities
    has a few hundred), else None. Such a side is computed once per distinct value, which is exact: reading
    probabilities or log-probabilities is elementwise (logits and normalisation read whole rows, and are
    computed whole), so each element gets, bit for bit, the value and bound it would get computed in place.
    Values are told apart by their bits (-0.0 from 0.0, every NaN from another)."""
    if space == "logits" or normalize or fed.size < DISTINCT_MIN:
        return None
    bits = np.ascontiguousarray(fed).view(np.uint64).reshape(-1)
    if (bits & _BELOW_11_BITS).any():
        return None
    values, where = np.unique(bits, return_inverse=True)
    return values.view(np.float64), where


def _floats(p: Dw, lp: Dw, f: kl.Flags) -> tuple[np.ndarray, np.ndarray]:
    """float64 copies of a side (p, log p) with its special values, to size tolerances."""
    prob = np.where(f.nan, np.nan, np.where(f.zero, 0.0, np.where(f.inf, np.inf, p.hi)))
    log = np.where(f.nan, np.nan, np.where(f.zero, -np.inf, np.where(f.inf, np.inf, lp.hi)))
    return prob, log


def _logits_scale(fed: np.ndarray, space: str):
    if space != "logits" or not fed.size:
        return 0.0
    with np.errstate(invalid="ignore"):
        finite = np.where(np.isfinite(fed), np.abs(fed), 0.0)
    return finite.max(axis=-1, keepdims=True)


def _finite(a: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(a), a, 0.0)


def _compute_terms(p_fed: np.ndarray, q_fed: np.ndarray, spec: Spec) -> _Terms:
    (p, lp, pf), (q, lq, qf) = _sides(p_fed, q_fed, spec)
    terms = kl.terms(p, lp, q, lq, pf, qf, spec, kl.same_terms(p_fed, q_fed, spec))
    generalized = spec.elementwise == "p*log(p/q)-p+q"
    (p_float, lp_float), (q_float, lq_float) = _floats(p, lp, pf), _floats(q, lq, qf)
    with np.errstate(invalid="ignore"):
        pa = np.abs(p_float)
        scale = (
            np.abs(lp_float)
            + np.abs(lq_float)
            + 1.0
            + _logits_scale(p_fed, spec.p_space)
            + _logits_scale(q_fed, spec.q_space)
        )
        magnitude = pa * scale + ((pa + np.abs(q_float)) if generalized else 0.0)
    return _Terms(terms, _finite(magnitude), _finite(scale))


def _reduce(t: _Terms, shape: tuple, spec: Spec, weights) -> Expectation:
    """Sum over classes, weight the rows (sample weights), then reduce over rows."""
    if spec.reduction == "none":
        return _expectation(t.terms, t.magnitude, 1, t.log_scale)
    row_shape, classes = shape[:-1], shape[-1]
    w = np.ones(row_shape) if weights is None else np.broadcast_to(np.asarray(weights, np.float64), row_shape)
    per_row = kl.sum_last(t.terms)
    if weights is not None:
        per_row = kl.scale(per_row, dw.exact(w))
    row_mag = t.magnitude.sum(axis=-1) * w
    row_scale = t.log_scale.sum(axis=-1)
    if spec.reduction == "per_row":
        return _expectation(per_row, row_mag, classes, row_scale)
    n_rows = int(np.prod(row_shape, dtype=np.int64))
    flat = Dw(*(np.reshape(a, (n_rows,)) for a in per_row))
    divisor = _divisor(spec, shape, n_rows, classes, w)
    value = kl.divide(kl.sum_last(flat), divisor)
    d = float(divisor.hi) if divisor.hi != 0 else np.inf
    return _expectation(value, np.asarray(float(row_mag.sum()) / d), n_rows * classes, float(row_scale.sum()) / d)


def _divisor(spec: Spec, shape: tuple, n_rows: int, classes: int, w: np.ndarray) -> Dw:
    if spec.reduction == "mean_weighted":
        return dw.total(dw.exact(w.reshape(-1)))
    count = {
        "sum": 1,
        "mean_all": n_rows * classes,
        "mean_batch": {"dim0": shape[0], "rows": n_rows, "batch": shape[0] if len(shape) > 1 else 1}.get(
            spec.batch_divisor, 1
        ),
    }[spec.reduction]
    return dw.exact(np.asarray(float(count)))  # counts are far below 2^53: exact


def _expectation(x: Dw, magnitude, terms: int, log_scale) -> Expectation:
    value, low, bound = _certified(x)
    return Expectation(value, np.asarray(magnitude), terms, log_scale, low, bound, DOUBLE_WORD)


def _certified(x: Dw) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(value, low, bound) with value = round(hi + lo); special values exact (bound 0)."""
    value, low, bound = dw.to_float(x)
    special = ~np.isfinite(value) & np.isfinite(bound)
    return value, np.where(np.isfinite(value), low, 0.0), np.where(special, 0.0, bound)


def _refined(hit: Expectation, p_fed, q_fed, spec: Spec, weights, need: np.ndarray) -> Expectation:
    return ball.refine(hit, need, p_fed, q_fed, spec, weights)


# --------------------------------------------------------------------------- helpers for cases and checks


def space_name(name: str) -> str:
    """A case file's space name ('probs', 'log_prob', 'logits') as the oracle's."""
    return {"probs": "prob"}.get(name, name)


def to_space(values: np.ndarray, source: str, target: str) -> np.ndarray:
    """Convert a case's float64 truth between spaces, rounding once to float64 (faithfully: the
    double-word result's bound is far below half an ulp). Probabilities become log-probabilities for a
    'logits' target (valid logits of the same distribution)."""
    source = space_name(source)
    values = np.asarray(values, np.float64)
    if source == target or (source, target) == ("log_prob", "logits"):
        return values
    prob, log = _floats(*_side(values, source, None, False))
    return prob if target == "prob" else log


def kl_per_row(
    p: np.ndarray, p_space: str, q: np.ndarray, q_space: str, bound_at_most: float | np.ndarray | None = None
) -> np.ndarray:
    """KL(P||Q) summed over the class axis: the value case files store."""
    spec = Spec(p_space=space_name(p_space), q_space=space_name(q_space))
    return expected(p, q, spec, bound_at_most=bound_at_most).value


def elementwise(
    p: np.ndarray, p_space: str, q: np.ndarray, q_space: str, bound_at_most: float | np.ndarray | None = None
) -> np.ndarray:
    spec = Spec(p_space=space_name(p_space), q_space=space_name(q_space), reduction="none")
    return expected(p, q, spec, bound_at_most=bound_at_most).value


class _Recent:
    """Recent intermediate results of this process, bounded by the elements they hold: the least recently
    used go first (a run keeps one case's work together, so what is reused is what was just used; one
    group of a 2 x 262,144 case reads about 4 million elements of sides)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict = OrderedDict()  # key -> (value, elements), least recently used first
        self._held = 0

    def get(self, key):
        found = self._items.get(key)
        if found is None:
            return None
        self._items.move_to_end(key)
        return found[0]

    def put(self, key, value, elements: int) -> None:
        if key in self._items:
            self._held -= self._items.pop(key)[1]
        while self._items and self._held + elements > self.limit:
            self._held -= self._items.popitem(last=False)[1][1]
        self._items[key] = (value, elements)
        self._held += elements


_TERMS = _Recent(2_000_000)  # elementwise terms of recent inputs (one evaluation serves every reduction): 40 B each
_SIDES = _Recent(12_000_000)  # recent arguments' sides (p, log p and their flags): 51 B an element, 600 MB at most
_RESULTS = cache.Results(Expectation)


_GRADIENTS = _Recent(2_000_000)  # finished gradients of recent inputs: every API of one convention reads the same


def gradient(p_fed: np.ndarray, q_fed: np.ndarray, spec: Spec, wrt: str, weights=None) -> Gradient:
    """The exact derivative of the sum of the outputs with respect to P's or Q's argument, certified
    (see `derivatives.analytic`; imported here, as it builds on the definitions above).

    Kept for recent inputs: the gradient checks of every API that shares a convention (a function and its
    module form, a framework and Keras on it, each in every option that maps to the same spec) ask for the
    same gradient of the same fed values; the elementwise derivatives are cached already (`_RESULTS`), the
    scaling by each reduction's divisor is not, and costs as much again on small cases. Held read-only."""
    from .derivatives import analytic

    given = (p_fed, q_fed, weights)
    p, q = np.asarray(p_fed, np.float64), np.asarray(q_fed, np.float64)
    w = None if weights is None else np.asarray(weights, np.float64)
    key = (cache.digest(p, q), spec, wrt, "" if w is None else cache.digest(w))
    hit = _GRADIENTS.get(key)
    if hit is None:
        # the kept gradient refines (in arb) from the values it was asked for: arrays no caller can change
        # afterwards, so a caller that reuses its buffers changes nothing for the next caller
        p, q = _frozen(p, given[0]), _frozen(q, given[1])
        hit = analytic(p, q, spec, wrt, None if w is None else _frozen(w, given[2]))
        _read_only(hit.value, hit.magnitude, hit.log_scale, hit.low, hit.bound)
        _GRADIENTS.put(key, hit, int(np.size(hit.value)))
    return hit


def _read_only(*parts) -> None:
    """Mark the arrays among `parts` read-only: a result every caller shares."""
    for part in parts:
        if isinstance(part, np.ndarray):
            part.setflags(write=False)


def _frozen(converted: np.ndarray, given) -> np.ndarray:
    """`converted` (float64 from the caller's `given`), read-only and out of any caller's reach: itself where
    converting made a new array or where neither it nor any array it views is writable (the runners' fed
    values), else a copy."""
    if converted is given and _writable_anywhere(converted):
        converted = converted.copy()
    _read_only(converted)
    return converted


def _writable_anywhere(a: np.ndarray) -> bool:
    """Whether `a` or an array it is a view of can be written: a read-only view of a writable buffer changes
    with the buffer."""
    part: object = a
    while isinstance(part, np.ndarray):
        if part.flags.writeable:
            return True
        part = part.base
    return False


__all__ = [
    "BATCH_DIVISORS",
    "DIGITS",
    "ELEMENTWISE",
    "REDUCTIONS",
    "SPACES",
    "Expectation",
    "Gradient",
    "Spec",
    "elementwise",
    "expected",
    "gradient",
    "kl_per_row",
    "output_shape",
    "to_space",
]
