"""What exploration searches: one target per API (value, gradient), library pair (distribution) or pair of
equivalent calls in two frameworks (cross-framework).

A target turns a drawn example into a case entry, builds the in-memory case exactly as the loader
would from that entry, and runs the suite's own check on it (runner.run_check,
gradients.run_gradient_check, distributions.runner.run_check): a failure found here is the record
`klconf run` writes for the saved case, verdict, message and diagnosis alike.
"""

from __future__ import annotations

import abc
import hashlib
import json
import re
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

from .. import case_validation, gradients, runner
from .. import cases as cases_mod
from ..dtypes import FORMATS
from ..frameworks import Api
from . import strategies

FAILING = ("fail", "error", "timeout", "crash")
DTYPE_ORDER = ("float64", "float32", "float16", "bfloat16")  # Hypothesis shrinks towards the first
KINDS = ("value", "gradient", "distribution", "cross-framework")


@dataclass
class Failure:
    """One failing example: the mechanism it is grouped by and the suite's record(s) of it."""

    key: tuple[str, ...]
    mechanism: str
    records: list[dict]  # the failing record first; a cross-framework failure carries both sides
    dtype: str
    options: dict = field(default_factory=dict)


class Target(abc.ABC):
    """Base: subclasses set label, kind, api, framework and implement strategy/entry/evaluate."""

    kind: str = ""
    label: str = ""
    api: str = ""
    framework: str = ""

    @abc.abstractmethod
    def strategy(self) -> st.SearchStrategy[dict]:
        """Declared here; every target kind defines it."""

    @abc.abstractmethod
    def evaluate(self, example: dict, case_id: str) -> Failure | None:
        """Declared here; every target kind defines it."""

    @abc.abstractmethod
    def entry(self, example: dict, case_id: str) -> dict:
        """Declared here; every target kind defines it."""


def example_digest(example: dict) -> str:
    return hashlib.sha256(json.dumps(example, sort_keys=True, default=repr).encode()).hexdigest()[:10]


def tensor_entry(example: dict, case_id: str) -> dict:
    return {
        "id": case_id,
        "description": "explored input",
        "dtypes": [example["dtype"]],
        "p": example["input"]["p"],
        "q": example["input"]["q"],
    }


def smaller_inputs(example: dict):
    """Candidates one step smaller than a tensor example: one middle index of a 3-D input, one row, a 1-D
    row, one class fewer (probability rows renormalised, a row of masked logits keeps one class). Hypothesis
    shrinks values well but not shapes (its list lengths follow the shape), so the search tries these after
    it, keeping a candidate only when it fails by the same mechanism."""
    shape = example["input"]["shape"]
    sides = {k: example["input"][k] for k in ("p", "q")}
    arrays = {k: (next(iter(v)), np.asarray(next(iter(v.values())), np.float64)) for k, v in sides.items()}

    def made(take) -> dict:
        out = {}
        for side, (space, values) in arrays.items():
            values = np.array(take(values))
            if space == "probs":
                totals = values.sum(axis=-1, keepdims=True)
                values = np.where(totals > 0, values / np.where(totals > 0, totals, 1.0), 1.0 / values.shape[-1])
            else:
                rows = values.reshape(-1, values.shape[-1])
                rows[np.all(rows == -np.inf, axis=-1), 0] = 0.0
            out[side] = {space: values.tolist()}
        return {**example, "input": {"shape": list(np.shape(next(iter(out["p"].values())))), **out}}

    if len(shape) == 3:
        yield from (made(lambda a, i=i: a[:, i]) for i in range(shape[1]))
    if len(shape) >= 2 and shape[0] > 1:
        yield from (made(lambda a, i=i: a[i : i + 1]) for i in range(shape[0]))
    if len(shape) == 2 and shape[0] == 1:
        yield made(lambda a: a[0])
    if shape[-1] > 1:
        yield from (made(lambda a, j=j: np.delete(a, j, axis=-1)) for j in range(shape[-1]))


def build_case(entry: dict) -> cases_mod.Case:
    """The Case the loader builds from `entry` (which the strategies keep legal; checked all the same)."""
    problems = case_validation.semantic_errors(entry)
    if problems:
        raise ValueError(f"explored entry is not a legal case: {problems}")
    return cases_mod._build_case(entry, "<explored>", None)


def _dtypes(available, selected) -> list[str]:
    return [d for d in DTYPE_ORDER if d in available and (not selected or d in selected)]


# --------------------------------------------------------------------------- mechanisms


_NUMBER = re.compile(r"(?<![A-Za-z0-9_.])[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _normalized(text: str) -> str:
    """A diagnosis or message with its numbers taken out: the same mechanism reads the same."""
    return _NUMBER.sub("#", text or "").strip()


_MATCH = re.compile(r"observed values match the declared convention with (.*)$")
# When several single changes explain a failure, which one names the mechanism: the zero handling first
# (it is the most specific), then clipping, reduction, argument order; input-space reads last.
_PRIORITY = (
    "zero_both",
    "zero_q",
    "zero_p",
    "no clipping",
    "clip_epsilon",
    "reduction",
    "batch_divisor",
    "arguments swapped",
    "elementwise",
    "normalizes",
)


def mechanism_detail(diagnosis: str, normalize: bool = True) -> str:
    """The part of the judge's diagnosis that names a mechanism: an overflow hint, and of the single changes
    that explain the observation the most specific one. Which further changes also fit depends on what
    else the input holds (a zero here, a masked logit there), so listing them all would split one
    mechanism into many."""
    clean = _normalized if normalize else (lambda text: (text or "").strip())
    found = _MATCH.search(diagnosis or "")
    if not found:
        return clean(diagnosis)
    labels = found.group(1).split(" or ")
    rank = [
        next((i for i, prefix in enumerate(_PRIORITY) if label.startswith(prefix)), len(_PRIORITY)) for label in labels
    ]
    primary = labels[rank.index(min(rank))]
    return clean(f"{diagnosis[: found.start()]}explained by {primary}")


def _zero(values: np.ndarray, space: str) -> np.ndarray:
    return values == 0 if space == "prob" else values == -np.inf


def regime(args, conv, dtype: str, index: list[int] | None) -> str:
    """The input regime of the worst element of an elementwise output: both zero, Q = 0, P = 0, a subnormal
    probability, or nothing special. A reduced output (a row, a scalar) has none: which of the terms
    summed into it caused the failure is not known, and a guess would split one mechanism in several."""
    p = np.asarray(args[conv.p_index], np.float64)
    q = np.asarray(args[1 - conv.p_index], np.float64)
    p, q = np.broadcast_arrays(p, q)
    if index is None or len(index) != p.ndim:
        return ""
    p, q = p[tuple(index)], q[tuple(index)]
    pz, qz = _zero(p, conv.p_space), _zero(q, conv.q_space)
    tiny = FORMATS[dtype].smallest_normal

    def small(values, space):
        with np.errstate(divide="ignore"):
            return (values > 0) & (values < tiny) if space == "prob" else (values > -np.inf) & (values < np.log(tiny))

    for label, mask in (
        ("P=0 and Q=0", pz & qz),
        ("Q=0 where P>0", qz & ~pz),
        ("P=0", pz & ~qz),
        ("subnormal probability", small(p, conv.p_space) | small(q, conv.q_space)),
    ):
        if np.any(mask):
            return label
    return ""


def _describe(parts) -> str:
    return "; ".join(p for p in parts if p)


# --------------------------------------------------------------------------- value and gradient


@dataclass
class ValueTarget(Target):
    """One tensor-level API (all its options), judged against the oracle under its declared convention."""

    api_entry: Api
    dtypes: list[str]
    devices: list[str]
    kind: str = "value"

    def __post_init__(self):
        self.api, self.framework = self.api_entry.name, self.api_entry.framework
        self.label = f"{self.kind} {self.api}"

    def strategy(self) -> st.SearchStrategy[dict]:
        return st.fixed_dictionaries(
            {
                "input": strategies.tensor_inputs(),
                "dtype": st.sampled_from(self.dtypes),
                "option": st.integers(0, len(self.api_entry.options) - 1),
                "device": st.sampled_from(self.devices),
            }
        )

    def entry(self, example: dict, case_id: str) -> dict:
        return tensor_entry(example, case_id)

    def options(self, example: dict) -> dict:
        return self.api_entry.options[example["option"]]

    def check(self, example: dict, case_id: str):
        case = build_case(self.entry(example, case_id))
        return runner.Check(
            case, self.api_entry, tuple(self.options(example).items()), example["device"], example["dtype"]
        )

    def evaluate(self, example: dict, case_id: str) -> Failure | None:
        check = self.check(example, case_id)
        record = runner.run_check(check)
        if record.verdict not in FAILING:
            return None
        conv = runner.declared(check)
        where = regime(runner.fed_arguments(check.case, conv, check.dtype), conv, check.dtype, _worst(record))
        detail = mechanism_detail(record.diagnosis) if record.verdict == "fail" else _normalized(record.message)[:160]
        key = (self.label, record.verdict, record.kind or "", detail, where)
        shown = mechanism_detail(record.diagnosis, normalize=False) if record.verdict == "fail" else detail
        mechanism = _describe([f"{self.api}: {record.kind or record.verdict}", where and f"at {where}", shown])
        return Failure(key, mechanism, [record.to_json()], check.dtype, self.options(example))


_WHERE = re.compile(r"values differ; at \[([\d, ]*)\]")


def _worst(record) -> list[int] | None:
    """The worst element's index, as the judge's message names it (None: no element named)."""
    found = _WHERE.search(record.message or "")
    if not found:
        return None
    return [int(i) for i in found.group(1).split(",") if i.strip()]


@dataclass
class GradientTarget(ValueTarget):
    """d(sum of outputs)/d(one argument) of one API, against the oracle's analytic gradient."""

    wrt: str = ""
    kind: str = "gradient"

    def __post_init__(self):
        self.api, self.framework = self.api_entry.name, self.api_entry.framework
        self.label = f"{self.kind} {self.api} d/d{self.wrt}"

    def check(self, example: dict, case_id: str):
        case = build_case(self.entry(example, case_id))
        return gradients.GradientCheck(
            case, self.api_entry, tuple(self.options(example).items()), example["device"], example["dtype"], self.wrt
        )

    def evaluate(self, example: dict, case_id: str) -> Failure | None:
        check = self.check(example, case_id)
        record = gradients.run_gradient_check(check)
        if record.verdict not in FAILING:
            return None
        conv = runner.declared(check)
        where = regime(runner.fed_arguments(check.case, conv, check.dtype), conv, check.dtype, _worst(record))
        detail = "" if record.verdict == "fail" else _normalized(record.message)[:160]
        key = (self.label, record.verdict, record.kind or "", detail, where)
        mechanism = _describe(
            [f"{self.api} d/d{self.wrt}: {record.kind or record.verdict}", where and f"at {where}", detail]
        )
        return Failure(key, mechanism, [record.to_json()], check.dtype, {**self.options(example), "wrt": self.wrt})
