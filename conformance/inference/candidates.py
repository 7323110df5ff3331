"""Candidate conventions: the hypotheses inference tests, what each one predicts for fed
values, and the field dict in which inferred and declared conventions are both reported.

A candidate is canonical: fields that cannot change any output under the rest of the
candidate are set to one fixed value (`canonical`), so two candidates that no probe could
tell apart are one candidate. The same canonical form turns a declared `Convention` into
fields (`declared_fields`), which is what makes "inferred == declared" a fair comparison:
Keras' clip makes its zero_q "finite" whatever the declaration's default says, and
torch's kl_div with reduction "sum" has no class axis to declare.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

import numpy as np

from .. import convention_fields as fields
from .. import oracle
from ..conventions import Convention

FIELDS = (
    "p_argument",
    "input_space",
    "elementwise",
    "reduction",
    "class_axis",
    "batch_divisor",
    "batch_divisor_1d",
    "normalizes",
    "zero_p",
    "zero_both",
    "zero_q",
    "clip_epsilon",
    "output_dtype",
    "accumulation",
)
STRUCTURAL = FIELDS[:8]
ZEROS = ("zero_p", "zero_both", "zero_q", "clip_epsilon")
DTYPE_FIELDS = ("output_dtype", "accumulation")
UNKNOWN = "unknown"
NA = "n/a"
SPACES = fields.values("input_space")
# the table's fields a declared Convention and a Candidate hold alike (the spaces and the divisor are read differently)
_SHARED = tuple(f.name for f in fields.FIELDS if f.name not in ("input_space", "batch_divisor"))
WEIGHTS_IGNORED = ", weights ignored"  # reduction suffix: the call passed weights and the API did not use them

CLASS_AXES = fields.values("class_axis")  # last; 0 always (scipy.stats.entropy); 1, or 0 when 1-D (torch cross_entropy)
# mean_weighted divides by the sum of the row weights ("weights"), or does so only for a batch and
# returns one unbatched (1-D) row's weighted loss undivided ("batch": Keras' Loss, whose scalar
# per-sample loss skips reduction)
WEIGHT_DIVISORS = ("weights", "batch")
DIVISORS = {"mean_batch": oracle.BATCH_DIVISORS, "mean_weighted": WEIGHT_DIVISORS}


@dataclass(frozen=True)
class Candidate:
    """One hypothesis about an API call. Arguments are referred to by position in call order."""

    p_index: int
    spaces: tuple[str, str]  # per argument, call order
    elementwise: str = "p*log(p/q)"
    reduction: str = "per_row"
    class_axis: int | None = -1
    batch_divisor: str = (
        NA  # mean_batch: dim0, rows or batch (oracle.Spec.batch_divisor); mean_weighted: WEIGHT_DIVISORS
    )
    normalizes: bool = False
    weighted: bool = False  # the call's per-row weights multiply the rows
    zero_p: str = "0"
    zero_both: str = "0"
    zero_q: str = "inf"
    clip_epsilon: float | None = None

    @property
    def input_space(self) -> tuple[str, str]:
        """The field table's name for `spaces` (conformance/convention_fields.py)."""
        return self.spaces

    def axis(self, ndim: int) -> int | None:
        """The fed array's axis summed over classes, for an input of `ndim` dimensions."""
        if self.class_axis is None:
            return None
        if ndim <= 1:
            return 0 if ndim == 1 else None
        return {-1: ndim - 1, 0: 0, 1: 1}[self.class_axis]

    def spec(self, ndim: int = 2) -> oracle.Spec:
        reduction = self.reduction
        if reduction == "mean_weighted" and self.batch_divisor == "batch" and ndim == 1:
            reduction = "sum"  # one unbatched row: its weighted loss, undivided
        divisor = self.batch_divisor if self.batch_divisor in oracle.BATCH_DIVISORS else "dim0"
        return fields.spec(
            self, self.spaces[self.p_index], self.spaces[1 - self.p_index], reduction=reduction, batch_divisor=divisor
        )

    def replace(self, **changes) -> Candidate:
        return dataclasses.replace(self, **changes)

    def predict(self, args: tuple[np.ndarray, np.ndarray], weights) -> tuple[oracle.Expectation, int | None] | None:
        """The oracle's value for the fed `args` (call order, in the API's layout), and the class axis
        an elementwise output must be moved from; None when this candidate cannot take these inputs."""
        ndim = args[0].ndim
        axis = self.axis(ndim)
        if self.weighted and weights is not None and axis is not None and axis != ndim - 1:
            return None  # weights are fed per row of a classes-last layout
        p, q = args[self.p_index], args[1 - self.p_index]
        if axis is not None and axis != ndim - 1:
            p, q = np.ascontiguousarray(np.moveaxis(p, axis, -1)), np.ascontiguousarray(np.moveaxis(q, axis, -1))
        exp = oracle.expected(p, q, self.spec(ndim), weights if self.weighted else None)
        moved = axis if self.reduction == "none" and axis is not None and axis != ndim - 1 else None
        return exp, moved

    def fields(self, arguments: tuple[str, str], weights_fed: bool) -> dict:
        """The reported fields (structural and zeros; dtype fields come from other probes)."""
        reduction = self.reduction
        if weights_fed and not self.weighted and reduction != "none":
            reduction += WEIGHTS_IGNORED
        return {
            "p_argument": arguments[self.p_index],
            "input_space": dict(zip(arguments, self.spaces)),
            "elementwise": self.elementwise,
            "reduction": reduction,
            "class_axis": self.class_axis,
            "batch_divisor": self.batch_divisor,
            "batch_divisor_1d": divisor_1d(self.reduction, self.batch_divisor),
            "normalizes": self.normalizes,
            "zero_p": self.zero_p,
            "zero_both": self.zero_both,
            "zero_q": self.zero_q,
            "clip_epsilon": self.clip_epsilon,
        }

    def convention(self, arguments: tuple[str, str]) -> Convention:
        shared = {name: getattr(self, name) for name in _SHARED if name != "zero_q"}
        return Convention(
            arguments=(arguments[0], arguments[1]),
            p_argument=arguments[self.p_index],
            input_space=(self.spaces[0], self.spaces[1]),
            batch_divisor=self.batch_divisor if self.batch_divisor in oracle.BATCH_DIVISORS else "dim0",
            zero_q="inf" if self.zero_q == "finite" else self.zero_q,
            **shared,
        )


def divisor_1d(reduction: str, batch_divisor: str) -> str:
    """What one 1-D row's summed terms are divided by."""
    if reduction == "mean_all":
        return "classes"
    if reduction == "mean_batch":
        return "classes" if batch_divisor == "dim0" else "1"
    if reduction == "mean_weighted":
        return "weights" if batch_divisor == "weights" else "1"
    return NA


def canonical(c: Candidate, weights_fed: bool) -> Candidate:
    """The representative of every candidate that predicts the same outputs as `c` on any input."""
    spaces, normalizes = c.spaces, c.normalizes
    if normalizes:  # normalised exp(x) is softmax(x): log_prob reads as logits
        spaces = (
            "logits" if spaces[0] == "log_prob" else spaces[0],
            "logits" if spaces[1] == "log_prob" else spaces[1],
        )
        if spaces == ("logits", "logits"):
            normalizes = False  # softmax rows are normalised already
    reduction, divisor, weighted = c.reduction, c.batch_divisor, c.weighted and weights_fed
    if reduction == "mean_weighted" and not weighted:
        reduction, divisor = "mean_batch", "rows"  # dividing by the count of unweighted rows
    if reduction == "none":
        weighted = False  # the oracle's elementwise output carries no row weights
    if reduction not in DIVISORS:
        divisor = NA
    elif divisor not in DIVISORS[reduction]:
        divisor = DIVISORS[reduction][0]
    class_axis = _class_axis(c.class_axis, spaces, normalizes, reduction, divisor, weighted)
    rows_normalised = normalizes or spaces == ("logits", "logits")
    elementwise = "p*log(p/q)" if rows_normalised and reduction != "none" else c.elementwise  # sum(q - p) = 0 per row
    zero_p, zero_both, zero_q = c.zero_p, c.zero_both, c.zero_q
    if c.clip_epsilon is not None:  # clipped inputs never reach a zero: every term is finite
        zero_p, zero_both, zero_q = "0", "0", "finite"
    return Candidate(
        c.p_index,
        spaces,
        elementwise,
        reduction,
        class_axis,
        divisor,
        normalizes,
        weighted,
        zero_p,
        zero_both,
        zero_q,
        c.clip_epsilon,
    )


def _class_axis(axis, spaces, normalizes, reduction, divisor, weighted) -> int | None:
    """The class axis where it changes an output, else None. Softmax, normalisation, per-row sums,
    row weights and the 'rows' divisor read it; the dim0 and batch divisors read only whether
    classes are on axis 0 (that moves shape[0]); sums and means over everything never do."""
    reads_rows = (
        normalizes
        or "logits" in spaces
        or reduction in ("per_row", "mean_weighted")
        or (reduction == "mean_batch" and divisor == "rows")
        or (weighted and reduction != "none")
    )
    if reads_rows:
        return axis if axis is not None else -1
    if reduction == "mean_batch":
        return 0 if axis == 0 else None
    return None


def structural_candidates(weights_fed: bool) -> list[Candidate]:
    """Every canonical structure (no zeros involved, no clipping), in a fixed order."""
    reductions = tuple(r for r in fields.values("reduction") if weights_fed or r != "mean_weighted")
    seen: dict[Candidate, None] = {}
    for p_index, spaces, normalizes, elementwise, reduction, axis, weighted in itertools.product(
        (0, 1),
        list(itertools.product(SPACES, SPACES)),
        fields.values("normalizes"),
        fields.values("elementwise"),
        reductions,
        CLASS_AXES,
        (True, False) if weights_fed else (False,),
    ):
        for divisor in DIVISORS.get(reduction, (NA,)):
            c = Candidate(p_index, spaces, elementwise, reduction, axis, divisor, normalizes, weighted)
            seen.setdefault(canonical(c, weights_fed))
    return list(seen)


def zero_variants(structure: Candidate, clip_epsilon: float | None, weights_fed: bool) -> list[Candidate]:
    """The zero conventions a structure may carry, unclipped, plus the clipped one when clipping was measured."""
    out = [
        structure.replace(zero_p=zp, zero_both=zb, zero_q=zq, clip_epsilon=None)
        for zp, zb, zq in itertools.product(
            fields.values("zero_p"), fields.values("zero_both"), fields.ZERO_Q_UNCLIPPED
        )
    ]
    if clip_epsilon is not None:
        out.append(canonical(structure.replace(clip_epsilon=clip_epsilon), weights_fed))
    return out


def from_convention(conv: Convention, weights_fed: bool) -> Candidate:
    """The canonical candidate a declared convention stands for (the oracle's mean_weighted divides by
    the weights' sum even for one 1-D row)."""
    c = Candidate(
        p_index=conv.p_index,
        spaces=conv.input_space,
        batch_divisor="weights" if conv.reduction == "mean_weighted" else conv.batch_divisor,
        weighted=weights_fed and conv.reduction != "none",
        **{name: getattr(conv, name) for name in _SHARED},
    )
    return canonical(c, weights_fed)


def declared_fields(conv: Convention, weights_fed: bool) -> dict:
    """A declared convention in the canonical field form inference reports."""
    fields = from_convention(conv, weights_fed).fields(conv.arguments, weights_fed)
    fields.update({name: None for name in DTYPE_FIELDS})  # adapters declare no dtype behaviour
    return fields


def hashable(value):
    """Field values as dict keys (input_space is a dict)."""
    return tuple(sorted(value.items())) if isinstance(value, dict) else value
