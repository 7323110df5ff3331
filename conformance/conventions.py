"""The vocabulary of KL conventions, and the declared convention of an API call.

A `Convention` says how an API maps its two arguments to KL(P||Q): which argument holds
P, the space each argument lives in, the elementwise formula, the class axis, the
reduction and its divisor, clipping, normalisation and what happens at zeros. Adapters
declare one per option combination; the oracle turns it into the expected value; the
judge names the field that explains a mismatch (`variants`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from . import convention_fields as fields
from . import oracle

INPUT_SPACES = fields.values("input_space")  # prob, log_prob, logits
ELEMENTWISE = fields.values("elementwise")  # "p*log(p/q)", "p*log(p/q)-p+q"
REDUCTIONS = fields.values("reduction")  # none, per_row, sum, mean_all, mean_batch, mean_weighted
ZERO_P = fields.values("zero_p")
ZERO_BOTH = fields.values("zero_both")
ZERO_Q = fields.values("zero_q")


@dataclass(frozen=True)
class Convention:
    arguments: tuple[str, str]  # parameter names (or positions) in call order
    p_argument: str  # the one that holds P in KL(P||Q)
    input_space: tuple[str, str]  # per argument, aligned with `arguments`
    reduction: str
    elementwise: str = "p*log(p/q)"
    class_axis: int | None = -1  # the axis summed over classes; None: no class sum (elementwise or global)
    batch_divisor: str = "dim0"  # mean_batch: see oracle.Spec.batch_divisor
    clip_epsilon: float | None = None
    normalizes: bool = False
    zero_p: str = "0"
    zero_both: str = "0"
    zero_q: str = "inf"

    def __post_init__(self) -> None:
        _check(self.p_argument in self.arguments, f"p_argument {self.p_argument!r} not in {self.arguments}")
        _check(
            len(self.input_space) == 2 and set(self.input_space) <= set(INPUT_SPACES),
            f"input_space {self.input_space} must be two of {INPUT_SPACES}",
        )
        for name in ("reduction", "elementwise", "batch_divisor", "zero_p", "zero_both", "zero_q"):
            allowed = fields.values(name)
            _check(getattr(self, name) in allowed, f"{name} {getattr(self, name)!r} not in {allowed}")

    @property
    def p_index(self) -> int:
        return self.arguments.index(self.p_argument)

    @property
    def q_argument(self) -> str:
        return self.arguments[1 - self.p_index]

    @property
    def p_space(self) -> str:
        return self.input_space[self.p_index]

    @property
    def q_space(self) -> str:
        return self.input_space[1 - self.p_index]

    @property
    def batch_divisor_1d(self) -> str:
        """What a 1-D input (one row of C classes) is divided by."""
        if self.reduction == "mean_all":
            return "classes"
        if self.reduction == "mean_batch":
            return "classes" if self.batch_divisor == "dim0" else "1"
        return "n/a"  # the API does not reduce over a batch

    def spec(self) -> oracle.Spec:
        return fields.spec(self, self.p_space, self.q_space)

    def replace(self, **changes: Any) -> Convention:
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        args = ", ".join(
            f"{name}={'P' if name == self.p_argument else 'Q'} as {space}"
            for name, space in zip(self.arguments, self.input_space)
        )
        parts = [f"({args})", self.elementwise, f"reduction={self.reduction}"]
        if self.reduction == "mean_batch":
            parts.append(f"divisor={self.batch_divisor}")
        if self.clip_epsilon is not None:
            parts.append(f"clip=[{self.clip_epsilon:g}, 1]")
        if self.normalizes:
            parts.append("normalizes rows")
        return ", ".join(parts)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(f"invalid convention: {message}")


def variants(conv: Convention) -> Iterator[tuple[str, Convention]]:
    """Conventions one field away from `conv` (and the argument swap), each with a label:
    used to say which part of a declared convention an observation contradicts. The fields and
    their values come from the field table (conformance/convention_fields.py)."""
    swapped_p = conv.arguments[1 - conv.p_index]
    yield f"arguments swapped (P in {swapped_p!r})", conv.replace(p_argument=swapped_p)
    away = partial(fields.one_field_away, conv, word="declared")
    for label, name, value in away(("reduction", "elementwise", "zero_p", "zero_both", "zero_q", "batch_divisor")):
        yield label, conv.replace(**{name: value})
    for i, space in enumerate(conv.input_space):
        for alt in INPUT_SPACES:
            if alt != space:
                spaces = list(conv.input_space)
                spaces[i] = alt
                yield (f"{conv.arguments[i]} read as {alt} (declared {space})", conv.replace(input_space=tuple(spaces)))
    for label, name, value in away(("clip_epsilon", "normalizes")):
        yield label, conv.replace(**{name: value})


def expectation(conv: Convention, args: tuple, weights: Any = None) -> oracle.Expectation:
    """The exact value `conv` predicts for the fed arguments (in call order, class axis last)."""
    return oracle.expected(args[conv.p_index], args[1 - conv.p_index], conv.spec(), weights)
