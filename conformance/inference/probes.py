"""Probe inputs, and the black box that feeds them to an API call.

The black box knows an API only as `Api.call` through its framework binding, plus the
argument names of its signature; it never reads the declared convention. Probes are built
in a classes-last layout and moved to the class axis under test where one is known.

Values are chosen so that each phase asks one question at a time: structural probes hold
numbers in [0.05, 0.95] (no clip at 1e-7 or at 1 can touch them, no zeros, unnormalised rows
so that normalisation and the -p+q term show); zero probes put one zero in one row; clip
probes put tiny values and values above 1 in otherwise ordinary rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from dataclasses import dataclass

import numpy as np

from .. import isolation, oracle
from ..dtypes import FORMATS, round_to
from ..frameworks import Api, binding

WEIGHT_PATTERN = (0.5, 2.0, 1.25, 0.75, 1.5, 1.0)  # exact in every dtype; sums differ from row counts


@dataclass(frozen=True, eq=False)
class Probe:
    name: str  # short, shown in evidence: "2d[3x4]", "zero_p", "clip q=1e-07"
    purpose: str
    args: tuple[np.ndarray, np.ndarray]  # call order, the exact values fed (already in `dtype`'s grid)
    dtype: str
    weights: np.ndarray | None = None

    @property
    def key(self) -> str:
        h = hashlib.sha256(self.dtype.encode())
        for a in self.args + ((self.weights,) if self.weights is not None else ()):
            a = np.ascontiguousarray(a)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
        return h.hexdigest()

    def describe(self) -> str:
        return f"{self.name} ({self.purpose})"


@dataclass(frozen=True)
class Observation:
    value: np.ndarray | None  # float64
    dtype: str | None  # the output's dtype name
    error: str | None = None  # the call raised: the probe tells nothing about conventions


def weights_for(row_shape: tuple) -> np.ndarray:
    n = int(np.prod(row_shape, dtype=np.int64))
    return np.resize(np.array(WEIGHT_PATTERN), n).reshape(row_shape)


def _uniform(shape, seed, low=0.05, high=0.95) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, shape)


def structural(weights_fed: bool) -> list[Probe]:
    """Several batch sizes and widths; 3-D separates the class axes and the 'rows' divisor, 1-D the
    'dim0' divisor. Float64, so that every candidate's prediction is sharp."""
    probes = []
    for i, shape in enumerate(((3, 4), (2, 3, 5), (6,), (5, 2))):
        args = (_uniform(shape, 100 + i), _uniform(shape, 200 + i))
        name = f"{len(shape)}d[{'x'.join(map(str, shape))}]"
        probes.append(
            Probe(
                name,
                "values in [0.05, 0.95], rows not normalised",
                args,
                "float64",
                weights_for(shape[:-1]) if weights_fed else None,
            )
        )
    return probes


# ---------------------------------------------------------------- probes built for a known structure

_P_BASE = np.array([[0.2, 0.3, 0.4, 0.15], [0.25, 0.35, 0.3, 0.2]])
_Q_BASE = np.array([[0.3, 0.15, 0.35, 0.25], [0.1, 0.45, 0.2, 0.3]])


@dataclass(frozen=True)
class Layout:
    """Where P goes, each argument's space, and the class axis: what a probe needs to be meaningful."""

    p_index: int
    spaces: tuple[str, str]
    axis: int | None  # the API's class axis (-1, 0, 1) or None

    def feed(self, p_prob: np.ndarray, q_prob: np.ndarray, dtype: str = "float64", weights: bool = False):
        """Probabilities (classes last) -> both arguments in call order, in their spaces and layout."""
        sides = {self.p_index: p_prob, 1 - self.p_index: q_prob}
        args = []
        for i in (0, 1):
            values = _in_space(sides[i], self.spaces[i])
            if self.axis not in (None, -1) and values.ndim >= 2:
                values = np.moveaxis(values, -1, self.axis)
            args.append(round_to(np.ascontiguousarray(values), dtype).astype(FORMATS[dtype].carrier))
        w = weights_for(p_prob.shape[:-1]) if weights else None
        return tuple(args), w


def _in_space(prob: np.ndarray, space: str) -> np.ndarray:
    if space == "prob":
        return np.array(prob, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return oracle.to_space(prob, "prob", "log_prob")  # log-probabilities are valid logits too


def zero_probes(layout: Layout, weights: bool) -> list[Probe]:
    """One zero situation per probe, in the first row only, so a NaN cannot hide another answer."""
    out = []
    for name, where_p, where_q, purpose in (
        ("zero_p", 1, None, "p = 0 < q at [0, 1]"),
        ("zero_both", 2, 2, "p = q = 0 at [0, 2]"),
        ("zero_q", None, 3, "q = 0 < p at [0, 3]"),
    ):
        p, q = _P_BASE.copy(), _Q_BASE.copy()
        if where_p is not None:
            p[0, where_p] = 0.0
        if where_q is not None:
            q[0, where_q] = 0.0
        args, w = layout.feed(p, q, weights=weights)
        out.append(Probe(name, purpose, args, "float64", w))
    return out


def clip_probe(layout: Layout, q_tiny: float, weights: bool) -> Probe:
    """q[0, 0] = q_tiny, everything else ordinary: a clip at epsilon shows as q_tiny < epsilon."""
    q = _Q_BASE.copy()
    q[0, 0] = q_tiny
    args, w = layout.feed(_P_BASE, q, weights=weights)
    return Probe(f"clip q={q_tiny:.3g}", "one tiny q", args, "float64", w)


def clip_check_probe(layout: Layout, weights: bool) -> Probe:
    """Tiny p and q, and values above 1, on both arguments: pins the clip interval to [epsilon, 1]."""
    p = np.array([[1e-12, 0.5, 1.5, 0.3], [3e-9, 2e-10, 0.4, 0.2]])
    q = np.array([[0.3, 1e-13, 0.6, 1.25], [1e-9, 0.5, 0.3, 0.2]])
    args, w = layout.feed(p, q, weights=weights)
    return Probe("clip check", "tiny p and q, values above 1", args, "float64", w)


def accumulation_probe(layout: Layout, dtype: str, weights: bool, classes: int = 4096) -> Probe:
    """Many classes of positive terms: a sum kept in a 10- or 7-bit significand drifts by many ulps."""
    rng = np.random.default_rng(7)
    p, q = rng.uniform(0.45, 0.55, (2, classes)), rng.uniform(0.2, 0.3, (2, classes))
    args, w = layout.feed(p, q, dtype, weights)
    return Probe(f"accumulation[2x{classes}]", f"{2 * classes} positive terms in {dtype}", args, dtype, w)


def in_dtype(probe: Probe, dtype: str) -> Probe:
    carrier = FORMATS[dtype].carrier
    args = (round_to(probe.args[0], dtype).astype(carrier), round_to(probe.args[1], dtype).astype(carrier))
    return Probe(f"{probe.name} {dtype}", probe.purpose, args, dtype, probe.weights)


# ---------------------------------------------------------------- the black box


class BlackBox:
    """One API call with fixed options on one device, fed probes through its binding only."""

    def __init__(self, api: Api, options: dict, device: str):
        self.api, self.options, self.device = api, dict(options), device
        self.binding = binding(api.framework)
        self.fw = self.binding.handle()  # raises Unavailable when the framework is missing
        first, second = api.convention(options).arguments  # the public signature
        self.arguments: tuple[str, str] = (first, second)
        self.calls = 0
        self._seen: dict[str, Observation] = {}

    def __call__(self, probe: Probe) -> Observation:
        key = probe.key
        hit = self._seen.get(key)
        if hit is None:
            hit = self._seen[key] = self._call(probe)
        return hit

    def _call(self, probe: Probe) -> Observation:
        b, fw = self.binding, self.fw
        context = b.call_context(fw, probe.dtype, self.device) if b.call_context else contextlib.nullcontext()
        self.calls += 1
        try:
            with context, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                native = [b.to_native(fw, a, probe.dtype, self.device) for a in probe.args]
                w = b.to_native(fw, probe.weights, probe.dtype, self.device) if probe.weights is not None else None
                with isolation.ApiCall():
                    out = self.api.call(fw, native[0], native[1], self.options, w)
                    value, dtype = b.to_numpy(fw, out)
        except isolation.ApiRaised as raised:  # the API refused these inputs: recorded as evidence, not a crash
            exc = raised.original
            if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit, ...: not a refusal, the check's error
                raise
            text = isolation.describe(exc).partition(": ")[2].strip()
            return Observation(None, None, f"{type(exc).__name__}: {text.splitlines()[0][:200] if text else ''}")
        return Observation(np.asarray(value, np.float64), dtype)


def show(values) -> str:
    """Compact text for an observed or predicted array."""
    if values is None:
        return "-"
    arr = np.asarray(values, np.float64)
    if arr.ndim == 0:
        return f"{float(arr):.6g}"
    flat = ", ".join(f"{x:.6g}" for x in arr.ravel()[:6])
    more = ", ..." if arr.size > 6 else ""
    return f"shape {list(arr.shape)} [{flat}{more}]"
