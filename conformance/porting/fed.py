"""One source call, fed once: a case's probabilities as both sides of a port get them, and the source's output.

For a case and dtype the case's P and Q become probabilities in that dtype; the source is fed them in its
own input spaces (log P and log Q computed from those very probabilities, where it takes log-probabilities
or logits) and laid out with classes on its class axis. One such call serves every target the source is
ported to (`source_call` keeps the latest few sources' calls), and what is derived from it under the
source's convention -- the basis a target is judged against, the exact value, the values one convention
field away -- is derived once (`Fed`).
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from .. import convention_fields, oracle
from ..cases import Case
from ..dtypes import round_to
from ..inference.candidates import Candidate, canonical
from ..inference.probes import BlackBox, Observation, Probe
from ..runner import weights_for
from .recipe import Recipe
from .tolerance import sizes

# the fields a failing equivalent is re-judged with, one at a time, to say what it behaves as
ONE_FIELD_AWAY = (
    "zero_p",
    "zero_both",
    "zero_q",
    "elementwise",
    "normalizes",
    "reduction",
    "class_axis",
    "batch_divisor",
    "clip_epsilon",
)


@dataclass
class Fed:
    """One case as both sides get it, and what the source returned."""

    p: np.ndarray  # probabilities in the dtype's carrier, in the source's layout
    q: np.ndarray
    args: tuple[np.ndarray, np.ndarray]  # the source's arguments, call order, its spaces and layout
    weights: np.ndarray | None
    observation: Observation
    _derived: dict = field(default_factory=dict, repr=False)  # (what, convention) -> computed once

    def _once(self, what: str, c: Candidate, make):
        """What `make()` computes from this source call under convention `c`, computed once: every target
        the source is ported to is compared against the same values (keyed by `c` too, so a caller that
        judges this call under another convention gets its own)."""
        key = (what, c)
        if key not in self._derived:
            self._derived[key] = make()
        return self._derived[key]

    def basis(self, c: Candidate) -> oracle.Expectation:
        """The source's output as the expected value, sized for the tolerance under the source's convention."""
        assert self.observation.value is not None, "a port is compared only where the source returned a value"
        source = self.observation.value
        return self._once(
            "basis",
            c,
            lambda: as_basis(
                sizes(c, broadcast_terms(self.args), self.weights), class_last(c, self.args[0].ndim, source)
            ),
        )

    def predicted(self, c: Candidate) -> oracle.Expectation | None:
        """The exact value under the convention `c` (None where it cannot be evaluated here), for the reasons
        a target differs."""

        def make():
            made = c.predict(broadcast_terms(self.args), self.weights)
            return made[0] if made is not None else None

        return self._once("predicted", c, make)

    def one_field_away(self, c: Candidate, weights_fed: bool) -> list[tuple[str, oracle.Expectation]]:
        """(label, exact value) under each convention one field away from `c`, in the layout judged: what
        every target that differs here is tried against."""

        def make():
            args, found = broadcast_terms(self.args), []
            for label, variant in variants(c, weights_fed):
                made = variant.predict(args, self.weights)
                if made is None:
                    continue
                expectation, moved = made
                if moved is not None and variant.axis(args[0].ndim) != c.axis(args[0].ndim):
                    continue  # an elementwise output in another layout than the one judged
                found.append((label, expectation))
            return found

        return self._once(f"one_field_away:{weights_fed}", c, make)


# One source call per case and dtype serves every target. A source's ports run one after another (they
# share a group, conformance/kinds.py), so only the latest few sources are kept: a run's memory stays flat.
_SOURCE: OrderedDict[tuple, dict[tuple, Fed]] = OrderedDict()
SOURCES_KEPT = 2


def source_call(recipe: Recipe, case: Case, dtype: str, device: str = "cpu") -> Fed:
    """The case fed to the source call in `dtype` (cached: one call serves every target)."""
    api = recipe.api
    source = (api.name, id(api.call), repr(sorted(recipe.options.items(), key=str)), device)
    fed = _SOURCE.setdefault(source, {})
    _SOURCE.move_to_end(source)
    while len(_SOURCE) > SOURCES_KEPT:
        _SOURCE.popitem(last=False)
    key = (case.id, case.hash, dtype)
    hit = fed.get(key)
    if hit is None:
        c = recipe.candidate
        p, q = case_probabilities(case, dtype)
        sides = {c.p_index: p, 1 - c.p_index: q}
        args = (in_space(sides[0], c.spaces[0], dtype), in_space(sides[1], c.spaces[1], dtype))
        axis = c.axis(p.ndim)
        if axis is not None and axis != p.ndim - 1:
            p, q = (np.ascontiguousarray(np.moveaxis(x, -1, axis)) for x in (p, q))
            args = (
                np.ascontiguousarray(np.moveaxis(args[0], -1, axis)),
                np.ascontiguousarray(np.moveaxis(args[1], -1, axis)),
            )
        weights = weights_for(case.shape) if recipe.weights_fed else None
        obs = _box(recipe, device)(Probe(case.id, "porting", args, dtype, weights))
        hit = fed[key] = Fed(p, q, args, weights, obs)
    return hit


_BOXES: dict[tuple, BlackBox] = {}


def _box(recipe: Recipe, device: str) -> BlackBox:
    api = recipe.api
    key = (api.name, id(api.call), repr(sorted(recipe.options.items(), key=str)), device)
    if key not in _BOXES:
        _BOXES[key] = BlackBox(api, recipe.options, device)
    return _BOXES[key]


# A case's probabilities in one dtype are the same for every source; rounding the largest cases to float16
# takes tens of milliseconds, so they are made once per process (as runner.fed_value: the corpus's cases in
# every dtype fit, a few tens of MB).
@functools.lru_cache(maxsize=256)
def case_probabilities(case: Case, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """P and Q of `case` as probabilities in `dtype` (read-only: one copy serves every source and target)."""
    p, q = probabilities(case.p, dtype), probabilities(case.q, dtype)
    p.setflags(write=False)
    q.setflags(write=False)
    return p, q


def probabilities(dist, dtype: str) -> np.ndarray:
    """One side of a case as probabilities rounded to `dtype`. Logits go through a float64 softmax: both
    sides of the comparison get these very bits, so they need not be the exactly rounded softmax
    (which costs seconds per large case in mpmath)."""
    values = np.asarray(dist.values, np.float64)
    if dist.space == "logits":
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            finite = np.where(np.isfinite(values), values, -np.inf)
            top = np.max(finite, axis=-1, keepdims=True) if values.size else np.zeros(values.shape[:-1] + (1,))
            shifted = np.exp(values - np.where(np.isfinite(top), top, 0.0))
            values = shifted / np.sum(shifted, axis=-1, keepdims=True)
    return round_to(values, dtype)


def in_space(prob: np.ndarray, space: str, dtype: str) -> np.ndarray:
    """What the source is fed for probabilities `prob`: themselves, or their logs (valid logits too)."""
    if space == "prob":
        return prob
    with np.errstate(divide="ignore", invalid="ignore"):
        return round_to(np.log(prob.astype(np.float64)), dtype)


def broadcast_terms(args) -> tuple[np.ndarray, np.ndarray]:
    """The source's arguments broadcast against each other: the terms the convention sums."""
    a, b = np.broadcast_arrays(*args)
    return np.ascontiguousarray(a), np.ascontiguousarray(b)


def class_last(c: Candidate, ndim: int, output: np.ndarray) -> np.ndarray:
    """An elementwise output with classes moved last, as the oracle's predictions are."""
    axis = c.axis(ndim)
    if c.reduction == "none" and axis is not None and axis != ndim - 1 and output.ndim == ndim:
        return np.moveaxis(output, axis, -1)
    return output


def as_basis(sized: oracle.Expectation | None, source: np.ndarray) -> oracle.Expectation:
    """The source's output as the expected value, with the sizes of the source's convention for the tolerance
    (the output's own size where the convention does not give the output's shape)."""
    if sized is None or np.shape(sized.magnitude) != source.shape:
        magnitude = np.where(np.isfinite(source), np.abs(source), 0.0)
        return oracle.Expectation(source, magnitude, 1, 0.0)
    return oracle.Expectation(source, sized.magnitude, sized.terms, sized.log_scale)


def variants(c: Candidate, weights_fed: bool):
    """(label, candidate) one convention field away from `c` (canonical, distinct from it)."""
    base = canonical(c, weights_fed)
    seen = {base}

    def emit(label, candidate):
        candidate = canonical(candidate, weights_fed)
        if candidate not in seen:
            seen.add(candidate)
            yield label, candidate

    # porting judges the reductions a port composes, and zeros without clipping (clipping is tried once)
    restrict = {
        "zero_q": convention_fields.ZERO_Q_UNCLIPPED,
        "reduction": ("per_row", "sum", "mean_all", "mean_batch"),
        "clip_epsilon": (1e-7,),
    }
    for label, name, value in convention_fields.one_field_away(c, ONE_FIELD_AWAY, "inferred", restrict):
        yield from emit(label, c.replace(**{name: value}))
