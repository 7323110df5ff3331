"""The fields of a KL convention, in one table: name, allowed values, default, and how each reads in words.

A declared `conventions.Convention`, an inferred `inference.candidates.Candidate` and the oracle's
`oracle.Spec` are three views of these fields, so they are derived from here: the oracle's input
(`spec`), the values a field may take (validation, inference's candidates), and the conventions "one
field away" from a given one, with which the judge diagnoses a failure (`runner.diagnose`) and porting
says what a failing equivalent behaves as. Where a view differs it says so by name (`spec_name`: the
oracle reads `normalizes` as `normalize`; `relevant`: the divisor means something only for mean_batch).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from . import oracle


def _always(_: Any) -> bool:
    return True


@dataclass(frozen=True)
class Field:
    name: str  # the attribute of Convention and Candidate
    values: tuple  # the values it may take; for an optional field, those tried when it is absent
    default: Any
    words: str  # what it means, in a sentence
    spec_name: str | None = None  # the oracle.Spec parameter it sets (None: not an oracle input)
    absent: str = ""  # optional fields (None allowed): how its absence reads
    relevant: Callable[[Any], bool] = _always  # whether it can matter for a convention (one field away)

    def allows(self, value: Any) -> bool:
        if self.absent:
            return value is None or isinstance(value, float) and value > 0
        return value in self.values


def _mean_batch(convention: Any) -> bool:
    return convention.reduction == "mean_batch"


ZERO_Q_UNCLIPPED = ("inf", "nan")  # "finite": every term is finite, which only clipping gives

FIELDS: tuple[Field, ...] = (
    Field(
        "input_space",
        oracle.SPACES,
        None,
        "the space each argument lives in (probabilities, log-probabilities or unnormalised logits)",
    ),
    Field("elementwise", oracle.ELEMENTWISE, "p*log(p/q)", "the term summed per element", "elementwise"),
    Field(
        "reduction",
        oracle.REDUCTIONS,
        None,
        "how the terms become the output: none, per row, summed, "
        "averaged over all elements, over the batch, or weighted by row",
        "reduction",
    ),
    Field("class_axis", (-1, 0, 1), -1, "the axis summed over classes: last, 0, or 1 (0 when 1-D)"),
    Field(
        "batch_divisor",
        oracle.BATCH_DIVISORS,
        "dim0",
        "what mean_batch divides by: shape[0] even of a 1-D "
        "input, the number of rows, or shape[0] of a batch and 1 for one row",
        "batch_divisor",
        relevant=_mean_batch,
    ),
    Field("normalizes", (False, True), False, "whether rows are rescaled to sum to 1 first", "normalize"),
    Field("zero_p", ("0", "nan"), "0", "the term where p = 0 < q", "zero_p"),
    Field("zero_both", ("0", "nan"), "0", "the term where p = q = 0", "zero_both"),
    Field("zero_q", ("inf", "nan", "finite"), "inf", "the term where q = 0 < p", "zero_q"),
    Field(
        "clip_epsilon",
        (1e-7, 1e-8, 1e-12, 1.1920928955078125e-07, 1.0000000116860974e-07),
        None,
        "both arguments clipped to [eps, 1] in probability space (the epsilons APIs use: 1e-7, 1e-8, 1e-12, "
        "float32's machine epsilon, and 1e-7 rounded to float32, which Keras on PyTorch applies to float64)",
        "clip_epsilon",
        absent="no clipping",
    ),
)
BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}


def values(name: str) -> tuple:
    return BY_NAME[name].values


def spec(source: Any, p_space: str, q_space: str, **overrides: Any) -> oracle.Spec:
    """The oracle's input for a convention (declared or inferred): every field with an oracle name."""
    given = {f.spec_name: getattr(source, f.name) for f in FIELDS if f.spec_name}
    return oracle.Spec(p_space=p_space, q_space=q_space, **{**given, **overrides})


def spec_changes(target: oracle.Spec, names: Iterable[str]) -> dict[str, Any]:
    """The oracle.Spec parameters that carry the named fields, set to `target`'s values (a step from one
    convention towards another: input_space is the two arguments' spaces, P's and Q's)."""
    changes: dict[str, Any] = {}
    for name in names:
        keys = ("p_space", "q_space") if name == "input_space" else (BY_NAME[name].spec_name,)
        changes.update({key: getattr(target, key) for key in keys if key})
    return changes


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def one_field_away(
    source: Any, names: Iterable[str], word: str, restrict: Mapping[str, tuple] | None = None
) -> Iterator[tuple[str, str, Any]]:
    """(label, field, value) for every value of each named field other than `source`'s own, in the order
    named. `word` says what `source` is ("declared", "inferred"); `restrict` narrows a field's values
    where a caller can only judge some. A reduction never moves to or from "none": that changes the
    output's shape, which no other single field explains."""
    restrict = restrict or {}
    for name in names:
        field = BY_NAME[name]
        current = getattr(source, name)
        if not field.relevant(source):
            continue
        if field.absent and current is not None:
            yield f"{field.absent} ({word} {_shown(current)})", name, None
            continue
        for value in restrict.get(name, field.values):
            if value == current or (name == "reduction" and "none" in (value, current)):
                continue
            shown = "none" if field.absent else _shown(current)
            yield f"{name}={_shown(value)} ({word} {shown})", name, value
