"""Seeded input generators for case files.

Each generator is a pure function of its parameters and a NumPy PCG64 stream, so a
case regenerates bit for bit on any machine with the same NumPy stream algorithms;
the optional `sha256` field of a generated distribution catches the day that stops
being true.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

MAX_ELEMENTS = 1 << 24  # 16.7M values: large vocabularies fit, a typo like 1e12 does not


def _classes(shape: tuple[int, ...]) -> int:
    return shape[-1]


def dirichlet(rng: np.random.Generator, shape, alpha: float = 1.0, **_) -> tuple[str, np.ndarray]:
    """Probabilities drawn from a symmetric Dirichlet(alpha) per row."""
    rows = int(np.prod(shape[:-1], dtype=np.int64))
    values = rng.dirichlet(np.full(_classes(shape), alpha), size=rows)
    return "probs", values.reshape(shape)


def softmax_normal(rng: np.random.Generator, shape, temperature: float = 1.0, scale: float = 1.0, **_):
    """Logits N(0, scale^2) / temperature: a softmax distribution, peaked when temperature is small."""
    return "logits", rng.normal(0.0, scale, size=shape) / temperature


def one_hot(rng: np.random.Generator, shape, **_):
    """Exactly one 1 per row, at a random class."""
    values = np.zeros(shape)
    hot = rng.integers(0, _classes(shape), size=shape[:-1])
    np.put_along_axis(values, hot[..., None], 1.0, axis=-1)
    return "probs", values


def uniform(rng: np.random.Generator, shape, **_):
    """1/C everywhere (the seed is unused but kept so that every generator has one)."""
    return "probs", np.full(shape, 1.0 / _classes(shape))


def near_degenerate(rng: np.random.Generator, shape, delta: float = 1e-6, **_):
    """One class holds 1 - delta, the others share delta equally: almost one-hot, never zero."""
    c = _classes(shape)
    values = np.full(shape, delta / max(c - 1, 1))
    hot = rng.integers(0, c, size=shape[:-1])
    np.put_along_axis(values, hot[..., None], 1.0 - delta if c > 1 else 1.0, axis=-1)
    return "probs", values


GENERATORS: dict[str, Callable] = {
    f.__name__: f for f in (dirichlet, softmax_normal, one_hot, uniform, near_degenerate)
}
SPACE = {
    "dirichlet": "probs",
    "softmax_normal": "logits",
    "one_hot": "probs",
    "uniform": "probs",
    "near_degenerate": "probs",
}
PARAMETERS = {
    "dirichlet": {"alpha"},
    "softmax_normal": {"temperature", "scale"},
    "one_hot": set(),
    "uniform": set(),
    "near_degenerate": {"delta"},
}


def generate(spec: dict) -> tuple[str, np.ndarray]:
    """Run the generator a case file names; `spec` has been validated by the loader."""
    params = {k: v for k, v in spec.items() if k in PARAMETERS[spec["generator"]]}
    rng = np.random.Generator(np.random.PCG64(spec["seed"]))
    return GENERATORS[spec["generator"]](rng, tuple(spec["shape"]), **params)


def digest(values: np.ndarray) -> str:
    """The 16-hex-digit fingerprint stored as `sha256` next to a generator."""
    data = np.ascontiguousarray(values, dtype="<f8").tobytes()
    return hashlib.sha256(data).hexdigest()[:16]
