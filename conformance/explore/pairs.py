"""Targets over pairs: a distribution family pair in one library, and two frameworks' equivalent calls."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from .. import judge, runner
from ..distributions import cases as distribution_cases
from ..distributions import registry
from ..distributions import runner as distribution_runner
from ..distributions.libraries import Library
from ..dtypes import round_to
from ..frameworks import Api
from . import strategies
from .targets import FAILING, Failure, Target, _describe, _normalized, build_case, tensor_entry

# --------------------------------------------------------------------------- distribution pairs


@dataclass
class DistributionTarget(Target):
    """KL(P || Q) of one family pair in one library, across the parameters' legal range."""

    library: Library
    p_family: str
    q_family: str
    dtypes: list[str]
    devices: list[str]
    kind: str = "distribution"

    def __post_init__(self):
        self.api, self.framework = self.library.name, self.library.framework
        self.label = f"{self.kind} {self.api} {self.p_family}||{self.q_family}"

    def strategy(self) -> st.SearchStrategy[dict]:
        return st.fixed_dictionaries(
            {
                "pair": strategies.distribution_pair(self.p_family, self.q_family),
                "dtype": st.sampled_from(self.dtypes),
                "device": st.sampled_from(self.devices),
            }
        )

    def entry(self, example: dict, case_id: str) -> dict:
        """The parameters rounded to the dtype first: the case states exactly the values the library is fed."""
        dtype = example["dtype"]

        def rounded(side: dict) -> dict:
            return {
                k: (v if k == "family" else round_to(np.asarray(v, np.float64), dtype).astype(np.float64).tolist())
                for k, v in side.items()
            }

        return {
            "id": case_id,
            "description": "explored parameters",
            "dtypes": [dtype],
            "p": rounded(example["pair"]["p"]),
            "q": rounded(example["pair"]["q"]),
        }

    def evaluate(self, example: dict, case_id: str) -> Failure | None:
        entry = self.entry(example, case_id)
        if distribution_cases.semantic_errors(entry):  # legal in float64, not once rounded (low == high, say)
            return None
        case = distribution_cases._build(entry, "<explored>", None)
        check = distribution_runner.DistributionCheck(case, self.library, example["device"], example["dtype"])
        record = distribution_runner.run_check(check)
        if record.verdict not in FAILING:
            return None
        detail = "" if record.verdict == "fail" else _normalized(record.message)[:160]
        key = (self.label, record.verdict, record.kind or "", detail)
        mechanism = _describe(
            [f"{self.api} KL({self.p_family} || {self.q_family}): {record.kind or record.verdict}", detail]
        )
        return Failure(key, mechanism, [record.to_json()], check.dtype)


def distribution_targets(libraries: list[Library], dtypes: list[str], devices: list[str]) -> list[DistributionTarget]:
    """Every family pair each available library resolves through its registry and the oracle covers."""
    out = []
    for library in libraries:
        try:
            covered = registry.coverage(library).covered
        except Exception:  # an unavailable library (a skip) has no pairs to search
            continue
        chosen = [d for d in dtypes if d in distribution_runner.DTYPES]
        out += [DistributionTarget(library, p, q, chosen, devices) for p, q in covered if chosen]
    return out


# --------------------------------------------------------------------------- two frameworks, one convention


@dataclass
class CrossTarget(Target):
    """Two frameworks' calls with one declared convention: on the same case they must agree up to their
    tolerances and the difference of their own fed bits (each is fed in its own input space)."""

    first: tuple[Api, dict]
    second: tuple[Api, dict]
    dtypes: list[str]
    devices: list[str]
    kind: str = "cross-framework"

    def __post_init__(self):
        (a, oa), (b, ob) = self.first, self.second
        self.api = f"{a.name} vs {b.name}"
        self.framework = f"{a.framework}/{b.framework}"
        self.label = f"{self.kind} {a.name}[{a.option_label(oa)}] vs {b.name}[{b.option_label(ob)}]"

    def strategy(self) -> st.SearchStrategy[dict]:
        return st.fixed_dictionaries(
            {
                "input": strategies.tensor_inputs(),
                "dtype": st.sampled_from(self.dtypes),
                "device": st.sampled_from(self.devices),
            }
        )

    def entry(self, example: dict, case_id: str) -> dict:
        return tensor_entry(example, case_id)

    def evaluate(self, example: dict, case_id: str) -> Failure | None:
        case = build_case(self.entry(example, case_id))
        outcomes = [
            runner.execute(runner.Check(case, api, tuple(options.items()), example["device"], example["dtype"]))
            for api, options in (self.first, self.second)
        ]
        records = [o.record for o in outcomes]
        if any(r.verdict in ("skip", "unsupported") for r in records):
            return None
        raised = [r.verdict in ("error", "timeout", "crash") for r in records]
        if all(raised):
            return None
        if any(raised):
            disagreement = "one raises, the other returns"
        else:
            disagreement = _disagreement(outcomes, example["dtype"], example["device"])
        if not disagreement:
            return None
        records.sort(key=lambda r: r.verdict not in FAILING)  # the failing side first
        key = (self.label, disagreement)
        mechanism = f"{self.api}: {disagreement}"
        return Failure(key, mechanism, [r.to_json() for r in records], example["dtype"], dict(self.first[1]))


def _disagreement(outcomes, dtype: str, device: str) -> str:
    (a, b) = outcomes
    if a.observed is None or b.observed is None or np.shape(a.observed) != np.shape(b.observed):
        return ""
    x, y = np.asarray(a.observed, np.float64), np.asarray(b.observed, np.float64)
    if np.any(np.isnan(x) != np.isnan(y)):
        return "NaN in one, a number in the other"
    both = ~(np.isnan(x) | np.isnan(y))
    if np.any(np.isinf(x[both]) != np.isinf(y[both])) or np.any((np.isinf(x) & np.isinf(y)) & (x != y)):
        return "infinite in one, finite (or the other sign) in the other"
    finite = np.isfinite(x) & np.isfinite(y)
    tol = judge.tolerance(a.expectation, dtype, device, _factor(a)) + judge.tolerance(
        b.expectation, dtype, device, _factor(b)
    )
    with np.errstate(invalid="ignore", over="ignore"):
        fed_difference = np.abs(
            np.asarray(a.expectation.value, np.float64) - np.asarray(b.expectation.value, np.float64)
        )
        excess = (
            np.abs(x - y) - np.broadcast_to(tol, x.shape) - np.where(np.isfinite(fed_difference), fed_difference, 0)
        )
    return "values differ beyond both tolerances" if np.any(finite & (excess > 0)) else ""


def _factor(outcome) -> float:
    override = outcome.record.tolerance_override
    return float(override[1:].split(":")[0]) if override.startswith("x") else 1.0


def signature(api: Api, options: dict) -> tuple:
    """What must match for two calls to be equivalent: the declared convention apart from the input spaces
    (the case's truth is fed to each in its own space) and whether sample weights are fed."""
    spec = api.convention(options).spec()
    return (
        spec.elementwise,
        spec.reduction,
        spec.batch_divisor,
        spec.clip_epsilon,
        spec.normalize,
        spec.zero_p,
        spec.zero_both,
        spec.zero_q,
        bool(options.get("sample_weight")),
    )


def cross_targets(apis: list[Api], dtypes: list[str], devices: list[str]) -> list[CrossTarget]:
    """For each declared convention, one pair of calls per two frameworks that both declare it."""
    by_signature: dict[tuple, dict[str, tuple[Api, dict]]] = {}
    for api in apis:
        for options in api.options:
            by_signature.setdefault(signature(api, options), {}).setdefault(api.framework, (api, options))
    out = []
    for calls in by_signature.values():
        for (_, first), (_, second) in itertools.combinations(sorted(calls.items()), 2):
            common = [d for d in dtypes if d in first[0].dtypes and d in second[0].dtypes]
            places = [d for d in devices if d in first[0].devices and d in second[0].devices]
            if common and places:
                out.append(CrossTarget(first, second, common, places))
    return out
