"""Hypothesis strategies for exploration: tensor-level inputs and distribution parameters.

Every strategy draws a plain, JSON-able description that is already a legal case entry (the
loader's own semantic checks accept it), so that what the search feeds is exactly what a saved
case feeds later. Magnitudes are drawn as a decimal exponent and a mantissa, so that the search
covers every scale of a parameter while Hypothesis still shrinks each value towards 1 (or 0):
a failure that needs a large logit shrinks to the smallest simple value that still fails.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from ..distributions.families import FAMILIES

MAX_ROWS = 4
MAX_CLASSES = 32
MAX_INNER = 2  # the middle axis of a 3-D input (batch x time x classes)
MAX_MASKED = 8  # masked (-inf) logits, or zero probabilities forced, per side
MAX_EXPONENT = 30  # distribution parameters range over 10**-30 .. 10**30 (representable in float32)
MAX_EVENT = 5  # classes of a categorical, dimensions of a multivariate normal


# --------------------------------------------------------------------------- tensor-level inputs


def shapes() -> st.SearchStrategy[list[int]]:
    """Class counts first (they shrink towards 1), then 2-D (the common case), 1-D and 3-D."""

    @st.composite
    def draw(draw_) -> list[int]:
        classes = draw_(st.integers(1, MAX_CLASSES))
        ndim = draw_(st.sampled_from((2, 1, 3)))
        if ndim == 1:
            return [classes]
        batch = [draw_(st.integers(1, MAX_ROWS))]
        if ndim == 3:
            batch.append(draw_(st.integers(1, MAX_INNER)))
        return batch + [classes]

    return draw()


def _scaled(exponent_max: int) -> st.SearchStrategy[float]:
    """A real number of any decimal magnitude up to 10**exponent_max, shrinking towards 0."""
    return st.integers(0, exponent_max).flatmap(
        lambda e: st.floats(-(10.0**e), 10.0**e, allow_nan=False, allow_infinity=False)
    )


def side(shape: list[int]) -> st.SearchStrategy[dict]:
    """One distribution of a case: rows of logits (some masked with -inf) or of probabilities
    (some exactly 0, some near-degenerate), as the case file states them."""
    size = math.prod(shape)

    @st.composite
    def draw(draw_) -> dict:
        space = draw_(st.sampled_from(("logits", "probs")))
        masked = draw_(st.lists(st.integers(0, size - 1), max_size=min(size, MAX_MASKED), unique=True))
        if space == "logits":
            exponent = draw_(st.integers(0, 6))
            bound = 10.0**exponent
            values = np.array(
                draw_(
                    st.lists(
                        st.floats(-bound, bound, allow_nan=False, allow_infinity=False), min_size=size, max_size=size
                    )
                ),
                np.float64,
            )
            values[masked] = -np.inf
            values = values.reshape(shape)
            rows = values.reshape(-1, shape[-1])
            rows[np.all(rows == -np.inf, axis=-1), 0] = 0.0  # a row that is all -inf is no distribution
            return {"logits": values.tolist()}
        weights = np.array(draw_(st.lists(st.floats(0.0, 1.0), min_size=size, max_size=size)), np.float64)
        weights[masked] = 0.0
        rows = weights.reshape(-1, shape[-1])
        totals = rows.sum(axis=-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            probs = np.where(totals > 0, rows / np.where(totals > 0, totals, 1.0), 1.0 / shape[-1])
        return {"probs": np.clip(probs, 0.0, 1.0).reshape(shape).tolist()}

    return draw()


def tensor_inputs() -> st.SearchStrategy[dict]:
    """{"shape", "p", "q"}: the numbers of a tensor-level case."""
    return shapes().flatmap(
        lambda shape: st.fixed_dictionaries({"shape": st.just(shape), "p": side(shape), "q": side(shape)})
    )


# --------------------------------------------------------------------------- distribution parameters


def _positive(exponent_max: int = MAX_EXPONENT) -> st.SearchStrategy[float]:
    """Log-uniform over 10**-e .. 10**e: every scale, shrinking towards 1."""
    return st.tuples(st.integers(-exponent_max, exponent_max), st.floats(1.0, 10.0, exclude_max=True)).map(
        lambda em: float(em[1] * 10.0 ** em[0])
    )


def _real() -> st.SearchStrategy[float]:
    return st.one_of(st.just(0.0), st.tuples(st.booleans(), _positive()).map(lambda s: -s[1] if s[0] else s[1]))


def _unit(low_open: bool, high_open: bool) -> st.SearchStrategy[float]:
    """Probabilities: the closed ends where legal, values near 0 and 1 at every scale, and any in between."""
    ends = [x for x, open_ in ((0.0, low_open), (1.0, high_open)) if not open_]
    tiny = st.integers(1, MAX_EXPONENT).map(lambda e: 10.0**-e)
    near_one = tiny.map(lambda t: 1.0 - t).filter(lambda x: x < 1.0)
    middle = st.floats(0.0, 1.0, exclude_min=True, exclude_max=True)
    return st.one_of(middle, *(st.just(x) for x in ends), tiny, near_one)


def parameter(domain: str, event: int) -> st.SearchStrategy:
    """A strategy for one parameter of `domain` (families.DOMAINS), with `event` classes or dimensions."""
    vector = lambda elements: st.lists(elements, min_size=event, max_size=event)
    if domain == "real":
        return _real()
    if domain == "positive":
        return _positive()
    if domain == "nonnegative":
        return st.one_of(st.just(0.0), _positive())
    if domain in ("unit", "open_unit", "half_open_unit"):
        return _unit(low_open=domain != "unit", high_open=domain == "open_unit")
    if domain == "count":
        return st.integers(0, 1000).map(float)
    if domain == "weights":
        return vector(st.one_of(st.just(0.0), _positive(12))).filter(lambda w: sum(w) > 0)
    if domain == "positive_vector":
        return vector(_positive(12))
    if domain == "vector":
        return vector(_real())
    if domain == "tril":
        return st.lists(st.tuples(_positive(6), _real()), min_size=event * event, max_size=event * event).map(
            lambda cells: [
                [
                    cells[i * event + j][0] if i == j else (cells[i * event + j][1] if j < i else 0.0)
                    for j in range(event)
                ]
                for i in range(event)
            ]
        )
    raise ValueError(f"no strategy for parameter domain {domain!r}")


def family_parameters(family: str, event: int) -> st.SearchStrategy[dict]:
    """A family's parameters as a case states them (batch of one), e.g. {"family": "normal", "loc": [0.0], ...}."""
    spec = FAMILIES[family]
    strategies = {p.name: parameter(p.domain, event).map(lambda v: [v]) for p in spec.params}
    drawn = st.fixed_dictionaries(strategies)
    if family == "uniform":  # low < high: draw the width, not the upper end
        drawn = st.tuples(_real(), _positive()).map(lambda lw: {"low": [lw[0]], "high": [lw[0] + lw[1]]})
    return drawn.map(lambda params: {"family": family, **params})


def distribution_pair(p_family: str, q_family: str) -> st.SearchStrategy[dict]:
    """{"event", "p", "q"}: both sides of a distribution case, with one event size."""
    return st.integers(2, MAX_EVENT).flatmap(
        lambda k: st.fixed_dictionaries(
            {"event": st.just(k), "p": family_parameters(p_family, k), "q": family_parameters(q_family, k)}
        )
    )
