"""The arbitrary-precision oracle: KL(P||Q) from the exact values an API was fed.

Inputs arrive as arrays holding exactly the binary values the API received; they are
interpreted in their declared space (probabilities, log-probabilities or logits),
optionally clipped and normalised, combined elementwise and reduced, all in mpmath at
`DIGITS` significant digits. Only the final result is rounded, once, to float64, so the
expected value is exact for what was fed to within half a float64 ulp.

Speed: logs and exps of float inputs are memoised by value (the same fed array serves many
APIs), elementwise terms are cached apart from the reduction (one term computation serves
every reduction), and finished results of large inputs go to an on-disk cache.

The oracle never imports a framework.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import mpmath
import numpy as np
from mpmath.libmp import fnan, fzero, from_float, mpf_exp, mpf_log

DIGITS = 50
PROVENANCE = f"mpmath {mpmath.__version__}, {DIGITS} digits"

ZERO, ONE = mpmath.mpf(0), mpmath.mpf(1)
INF, NAN = mpmath.mpf("inf"), mpmath.mpf("nan")

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
    value: np.ndarray  # float64, the API's output shape
    magnitude: np.ndarray  # sum of |p| (|log p| + |log q| + 1) over the terms feeding each output element
    terms: int  # how many elementwise terms are summed into one output element
    log_scale: np.ndarray | float = 0.0  # sum of (|log p| + |log q| + 1): scales errors from gradual underflow


# --------------------------------------------------------------------------- memoised elementary functions

_LOG: dict[float, mpmath.mpf] = {}
_EXP: dict[float, mpmath.mpf] = {}
_MEMO_LIMIT = 1_000_000  # entries per memo (~300 bytes each)


def _mpf(x: float):
    """float -> mpf without mpmath's generic conversion machinery (exact)."""
    return _MAKE(from_float(x))


_MAKE = mpmath.mp.make_mpf


def _log_float(x: float):
    hit = _LOG.get(x)
    if hit is None:
        if len(_LOG) > _MEMO_LIMIT:
            _LOG.clear()
        if x != x or x < 0:
            hit = NAN
        elif x == 0:
            hit = -INF
        else:
            hit = _MAKE(mpf_log(from_float(x), mpmath.mp.prec, "n"))
        _LOG[x] = hit
    return hit


def _exp_float(x: float):
    hit = _EXP.get(x)
    if hit is None:
        if len(_EXP) > _MEMO_LIMIT:
            _EXP.clear()
        hit = _EXP[x] = NAN if x != x else _MAKE(mpf_exp(from_float(x), mpmath.mp.prec, "n"))
    return hit


def _log(x):
    if mpmath.isnan(x) or x < 0:
        return NAN
    if x == 0:
        return -INF
    return mpmath.log(x)


# --------------------------------------------------------------------------- interpretation


def _rows(flat: list, width: int) -> list[list]:
    return [flat[i:i + width] for i in range(0, len(flat), width)] if width else []


class _Side:
    """One argument as probabilities `p` and their logs `log` in mpmath, plus float64 copies
    (`p_float`, `log_float`) that size the tolerances."""

    def __init__(self, fed: np.ndarray, space: str, clip: float | None, normalize: bool):
        if space not in SPACES:
            raise ValueError(f"unknown input space {space!r}")
        fed = np.asarray(fed, dtype=np.float64)
        width = fed.shape[-1] if fed.ndim else 1
        flat = fed.ravel().tolist()
        if space == "prob":
            if clip is not None:  # exact in float64: the bounds are float64 values
                flat = [x if x != x else min(max(x, clip), 1.0) for x in flat]
            self.p = [_mpf(x) for x in flat]
            self.log = [_log_float(x) for x in flat]
        elif space == "log_prob":
            self.log = [_mpf(x) for x in flat]
            self.p = [_exp_float(x) for x in flat]
        else:
            self.log = _log_softmax(flat, width)
            self.p = [NAN if mpmath.isnan(x) else mpmath.exp(x) for x in self.log]
        if clip is not None and space != "prob":
            lo = mpmath.mpf(clip)
            self.p = [x if mpmath.isnan(x) else min(max(x, lo), ONE) for x in self.p]
            self.log = [_log(x) for x in self.p]
        if normalize:
            self.p = _normalize_rows(self.p, width)
            self.log = [_log(x) for x in self.p]
        self.p_float = np.array([float(x) for x in self.p]).reshape(fed.shape)
        self.log_float = np.array([float(x) for x in self.log]).reshape(fed.shape)
        self.logits_scale = 0.0
        if space == "logits" and fed.size:
            with np.errstate(invalid="ignore"):
                self.logits_scale = np.nanmax(np.abs(np.where(np.isfinite(fed), fed, np.nan)), axis=-1, keepdims=True)


def _log_softmax(flat: list[float], width: int) -> list:
    out = []
    for row in _rows([mpmath.mpf(x) for x in flat], width):
        finite = [x for x in row if mpmath.isfinite(x)]
        if not finite or any(mpmath.isnan(x) or x == INF for x in row):
            out += [NAN] * len(row)
            continue
        top = max(finite)
        lse = top + mpmath.log(mpmath.fsum(mpmath.exp(x - top) for x in finite))
        out += [x - lse for x in row]
    return out


def _normalize_rows(p: list, width: int) -> list:
    out = []
    for row in _rows(p, width):
        total = mpmath.fsum(row)
        out += [x / total if total != 0 else NAN for x in row]
    return out


# --------------------------------------------------------------------------- terms and reductions


def _term(p, logp, q, logq, generalized: bool, spec: Spec):
    """One elementwise KL term with the zero conventions of `spec` (special values tested on raw
    mpf tuples: this runs once per input element)."""
    pm, qm = p._mpf_, q._mpf_
    if pm == fnan or qm == fnan or (pm[0] and pm != fzero) or (qm[0] and qm != fzero):
        return NAN  # NaN or negative (the sign bit of a non-zero value)
    if pm == fzero:
        if qm == fzero:
            return NAN if spec.zero_both == "nan" else ZERO
        base = NAN if spec.zero_p == "nan" else ZERO
        return base + q if generalized else base
    if qm == fzero:
        return {"inf": INF, "nan": NAN}.get(spec.zero_q, INF)
    if pm[1] == 0:  # p = +inf (the only special value left with a zero mantissa)
        return NAN if qm[1] == 0 else INF
    term = p * (logp - logq)
    return term - p + q if generalized else term


@dataclass(frozen=True)
class _Terms:
    values: list  # mpmath terms, flat
    magnitude: np.ndarray  # float64, input shape
    log_scale: np.ndarray  # float64, input shape


def expected(p_fed: np.ndarray, q_fed: np.ndarray, spec: Spec, weights: np.ndarray | None = None) -> Expectation:
    """The exact result of the convention `spec` applied to the fed values (class axis last)."""
    p_fed, q_fed = np.asarray(p_fed), np.asarray(q_fed)
    inputs = _digest(p_fed, q_fed)
    key = _digest_text(inputs, repr(spec), _digest(weights) if weights is not None else "")
    hit = _RESULTS.get(key)
    if hit is None:
        terms_key = (inputs, replace(spec, reduction="none"))
        terms = _TERMS.get(terms_key)
        if terms is None:
            terms = _compute_terms(np.asarray(p_fed, np.float64), np.asarray(q_fed, np.float64), spec)
            _TERMS.put(terms_key, terms)
        hit = _reduce(terms, p_fed.shape, spec, weights)
        _RESULTS.put(key, hit)
    return hit


def _compute_terms(p_fed: np.ndarray, q_fed: np.ndarray, spec: Spec) -> _Terms:
    generalized = spec.elementwise == "p*log(p/q)-p+q"
    with mpmath.workdps(DIGITS):
        p = _Side(p_fed, spec.p_space, spec.clip_epsilon, spec.normalize)
        q = _Side(q_fed, spec.q_space, spec.clip_epsilon, spec.normalize)
        values = [_term(a, la, b, lb, generalized, spec) for a, la, b, lb in zip(p.p, p.log, q.p, q.log)]
    with np.errstate(invalid="ignore"):
        pa = np.abs(p.p_float)
        scale = np.abs(p.log_float) + np.abs(q.log_float) + 1.0 + p.logits_scale + q.logits_scale
        magnitude = pa * scale + ((pa + np.abs(q.p_float)) if generalized else 0.0)
    shape = p_fed.shape
    return _Terms(values, _finite(magnitude).reshape(shape), _finite(scale).reshape(shape))


def _finite(a: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(a), a, 0.0)


def _reduce(terms: _Terms, shape: tuple, spec: Spec, weights) -> Expectation:
    """Sum over classes, weight the rows (sample weights), then reduce over rows."""
    if spec.reduction == "none":
        return Expectation(_to_array(terms.values, shape), terms.magnitude, 1, terms.log_scale)
    row_shape = shape[:-1]
    classes = shape[-1]
    with mpmath.workdps(DIGITS):
        w = _row_weights(weights, row_shape)
        per_row = [wi * mpmath.fsum(row) for wi, row in zip(w, _rows(terms.values, classes))]
        w_float = np.asarray([float(x) for x in w]).reshape(row_shape)
        row_mag = terms.magnitude.sum(axis=-1) * w_float
        row_scale = terms.log_scale.sum(axis=-1)
        if spec.reduction == "per_row":
            return Expectation(_to_array(per_row, row_shape), row_mag, classes, row_scale)
        n_rows = len(per_row)
        divisor = {
            "sum": 1,
            "mean_all": n_rows * classes,
            "mean_batch": {"dim0": shape[0], "rows": n_rows, "batch": shape[0] if len(shape) > 1 else 1}[spec.batch_divisor],
            "mean_weighted": mpmath.fsum(w),
        }[spec.reduction]
        value = mpmath.fsum(per_row) / divisor if divisor != 0 else NAN
    d = float(divisor) if divisor != 0 else np.inf
    return Expectation(_to_array([value], ()), np.asarray(float(row_mag.sum()) / d), n_rows * classes,
                       float(row_scale.sum()) / d)


def _row_weights(weights, row_shape):
    if weights is None:
        return [ONE] * int(np.prod(row_shape, dtype=np.int64))
    w = np.broadcast_to(np.asarray(weights, np.float64), row_shape)
    return [mpmath.mpf(x) for x in w.ravel().tolist()]


def _to_array(values: list, shape: tuple) -> np.ndarray:
    return np.array([float(v) for v in values], dtype=np.float64).reshape(shape)


# --------------------------------------------------------------------------- helpers for cases and checks


def _space(name: str) -> str:
    return {"probs": "prob"}.get(name, name)


def to_space(values: np.ndarray, source: str, target: str) -> np.ndarray:
    """Convert a case's float64 truth between spaces in mpmath, rounding once to float64.
    Probabilities become log-probabilities for a 'logits' target (valid logits of the same distribution)."""
    source = _space(source)
    values = np.asarray(values, np.float64)
    if source == target or (source, target) == ("log_prob", "logits"):
        return values
    if (source, target) in (("prob", "log_prob"), ("prob", "logits")):
        with mpmath.workdps(DIGITS):
            return np.array([float(_log_float(x)) for x in values.ravel().tolist()]).reshape(values.shape)
    with mpmath.workdps(DIGITS):
        side = _Side(values, source, None, False)
        out = side.p if target == "prob" else side.log
        return _to_array(out, values.shape)


def kl_per_row(p: np.ndarray, p_space: str, q: np.ndarray, q_space: str) -> np.ndarray:
    """KL(P||Q) summed over the class axis: the value case files store."""
    return expected(p, q, Spec(p_space=_space(p_space), q_space=_space(q_space))).value


def elementwise(p: np.ndarray, p_space: str, q: np.ndarray, q_space: str) -> np.ndarray:
    return expected(p, q, Spec(p_space=_space(p_space), q_space=_space(q_space), reduction="none")).value


# --------------------------------------------------------------------------- caches


_ORACLE_VERSION = 3  # bump when the oracle's arithmetic changes, to invalidate disk caches


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for arr in arrays:
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def _digest_text(*parts: str) -> str:
    return hashlib.sha256("|".join(parts + (str(DIGITS), mpmath.__version__, str(_ORACLE_VERSION))).encode()).hexdigest()


class _TermsCache:
    """In-memory, bounded by the number of terms held (an mpmath term costs ~150 bytes)."""

    LIMIT = 2_000_000

    def __init__(self):
        self._items: dict = {}
        self._held = 0

    def get(self, key):
        return self._items.get(key)

    def put(self, key, value: _Terms):
        if self._held + len(value.values) > self.LIMIT:
            self._items.clear()
            self._held = 0
        self._items[key] = value
        self._held += len(value.values)


class _ResultCache:
    """In-process dict plus an on-disk cache (KLCONF_CACHE_DIR; 'off' disables it) for large inputs,
    shared by pytest-xdist workers and by later runs."""

    DISK_MIN_TERMS = 256  # below this, recomputing is cheaper than a file

    MEMORY_BYTES = 256 << 20  # a process keeps at most this much of results in memory; the disk has the rest

    def __init__(self):
        self._memory: dict[str, Expectation] = {}
        self._bytes = 0

    @property
    def _dir(self) -> Path | None:
        """Read at each use, not at import, so the setting in force when a check runs is the one used."""
        configured = os.environ.get("KLCONF_CACHE_DIR", "")
        if configured.lower() in ("0", "off", "none"):
            return None
        return Path(configured) if configured else Path.home() / ".cache" / "klconf" / "oracle"

    def get(self, key: str) -> Expectation | None:
        if key in self._memory:
            return self._memory[key]
        folder = self._dir
        if folder is None:
            return None
        try:
            with np.load(folder / f"{key}.npz") as data:
                hit = Expectation(data["value"], data["magnitude"], int(data["terms"]), data["log_scale"])
        except (OSError, ValueError, KeyError):
            return None
        self._remember(key, hit)
        return hit

    def _remember(self, key: str, value: Expectation) -> None:
        size = sum(np.asarray(a).nbytes for a in (value.value, value.magnitude, value.log_scale)) + 200
        if self._bytes + size > self.MEMORY_BYTES:
            self._memory.clear()
            self._bytes = 0
        self._memory[key] = value
        self._bytes += size

    def put(self, key: str, value: Expectation) -> None:
        self._remember(key, value)
        folder = self._dir
        if folder is None or np.size(value.magnitude) * max(value.terms, 1) < self.DISK_MIN_TERMS:
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                np.savez(f, value=value.value, magnitude=value.magnitude, terms=value.terms,
                         log_scale=value.log_scale)
            os.replace(tmp, folder / f"{key}.npz")
        except OSError:
            pass  # a cache that cannot be written is only slower


_TERMS = _TermsCache()
_RESULTS = _ResultCache()


# --------------------------------------------------------------------------- analytic gradients


@dataclass(frozen=True)
class Gradient:
    value: np.ndarray  # d(sum of the outputs) / d(argument), float64, the argument's shape
    magnitude: np.ndarray  # scale of the rounding error in each element (for tolerances)
    terms: int  # terms summed into one element (the class width for logits, else 1)
    log_scale: np.ndarray | float = 0.0  # (|log p| + |log q| + 1) x scale: how far an underflowed exp carries

    def expectation(self) -> Expectation:
        """The same numbers in the shape the judge takes."""
        return Expectation(self.value, self.magnitude, self.terms, self.log_scale)


def gradient(p_fed: np.ndarray, q_fed: np.ndarray, spec: Spec, wrt: str, weights=None) -> Gradient:
    """The exact derivative of the sum of the outputs with respect to the argument carrying P
    (`wrt="p"`) or Q (`wrt="q"`), in that argument's own space.

    Where the derivative does not exist the limit is used: d/dp at p = 0 is -inf (log p), d/dq at
    q = 0 < p is -inf. A clipped value has derivative 0; at the clip bound itself the unclipped
    derivative applies (a clip passes the gradient through where the value equals the bound).
    """
    if spec.normalize:
        raise ValueError("no analytic gradient for normalising conventions")
    p_fed, q_fed = np.asarray(p_fed, np.float64), np.asarray(q_fed, np.float64)
    scale = _element_scale(p_fed.shape, spec, weights)
    unscaled = _unscaled_gradient(p_fed, q_fed, replace(spec, reduction="none", batch_divisor="dim0"), wrt)
    # the reduction only scales each element's derivative (by 1/divisor and the row weight): exact
    # enough in float64 (one rounding) next to the tolerances of the narrowest dtype, and it lets
    # one mpmath evaluation serve every reduction option
    return Gradient(unscaled.value * scale, unscaled.magnitude * np.abs(scale), unscaled.terms,
                    unscaled.log_scale * np.abs(scale))


def _unscaled_gradient(p_fed: np.ndarray, q_fed: np.ndarray, spec: Spec, wrt: str) -> Expectation:
    key = _digest_text(_digest(p_fed, q_fed), repr(spec), f"gradient/{wrt}")
    hit = _RESULTS.get(key)
    if hit is not None:
        return hit
    shape = p_fed.shape
    generalized = spec.elementwise == "p*log(p/q)-p+q"
    space = spec.p_space if wrt == "p" else spec.q_space
    fed = (p_fed if wrt == "p" else q_fed).ravel().tolist()
    with mpmath.workdps(DIGITS):
        p = _Side(p_fed, spec.p_space, spec.clip_epsilon, False)
        q = _Side(q_fed, spec.q_space, spec.clip_epsilon, False)
        width = shape[-1]
        if space == "logits":
            p_sums = [mpmath.fsum(row) for row in _rows(p.p, width)]
            values = [qj * p_sums[i // width] - pj for i, (pj, qj) in enumerate(zip(p.p, q.p))]
        else:
            values = [_derivative(wrt, space, generalized, spec.clip_epsilon, x, pi, lpi, qi, lqi)
                      for x, pi, lpi, qi, lqi in zip(fed, p.p, p.log, q.p, q.log)]
        value = np.array([float(v) for v in values]).reshape(shape)
    pa, qa = np.abs(p.p_float), np.abs(q.p_float)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if space == "logits":
            magnitude = qa * pa.sum(axis=-1, keepdims=True) + pa
        elif wrt == "q":
            magnitude = (pa / qa if space == "prob" else pa) + (1.0 if space == "prob" else qa) * generalized
        else:
            magnitude = (np.abs(p.log_float) + np.abs(q.log_float) + 1.0) * (1.0 if space == "prob" else pa)
    log_scale = _finite(np.abs(p.log_float) + np.abs(q.log_float) + 1.0)
    hit = Expectation(value, _finite(magnitude), shape[-1] if space == "logits" else 1, log_scale)
    _RESULTS.put(key, hit)
    return hit


def _derivative(wrt, space, generalized, clip, fed_value, p, logp, q, logq):
    """d term / d argument for one element, at the fed value."""
    if any(mpmath.isnan(v) for v in (p, q)) or fed_value != fed_value:
        return NAN
    if space == "prob" and clip is not None and not (clip <= fed_value <= 1.0):
        return ZERO  # clipped: the output does not depend on this input here
    if wrt == "q":
        if space == "prob":
            if p == 0:
                return ONE if generalized else ZERO
            d = -INF if q == 0 else -p / q
            return d + 1 if generalized else d
        return q - p if generalized else -p  # log_prob: t = p (log p - lq) [- p + e^lq]
    if space == "prob":
        d = -INF if p == 0 else logp - logq + (0 if generalized else 1)
        return INF if q == 0 and p > 0 else d
    # log_prob: t = e^lp (lp - lq) [- e^lp]
    if p == 0:
        return ZERO
    return p * (logp - logq + (0 if generalized else 1))


def _element_scale(shape: tuple, spec: Spec, weights) -> np.ndarray:
    """d(sum of outputs) / d(term) for each element: the reduction's divisor and the row weights."""
    row_shape = shape[:-1]
    w = np.ones(row_shape) if weights is None else np.broadcast_to(np.asarray(weights, np.float64), row_shape)
    n_rows, classes = int(np.prod(row_shape, dtype=np.int64)), shape[-1]
    r = spec.reduction
    if r in ("none",):
        per = np.ones(row_shape)
    elif r in ("per_row", "sum"):
        per = w
    elif r == "mean_all":
        per = w / (n_rows * classes) if n_rows * classes else w
    elif r == "mean_batch":
        divisor = {"dim0": shape[0], "rows": n_rows, "batch": shape[0] if len(shape) > 1 else 1}[spec.batch_divisor]
        per = w / divisor if divisor else w
    else:  # mean_weighted
        per = w / w.sum() if w.sum() else w
    return np.broadcast_to(np.asarray(per, np.float64)[..., None], shape)
