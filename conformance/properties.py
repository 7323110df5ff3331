"""Declarative properties: a case lists them (`properties:` in its YAML) and every API is checked.

  self_zero               KL(P||P) = 0
  non_negative            outputs that sum over classes are >= 0 for normalised inputs
  reduction_consistency   every reduction option implies the same total (sum = mean x count, ...)
  permutation_invariance  permuting the classes of P and Q together permutes elementwise outputs
                          and leaves summed outputs unchanged
  cross_entropy_identity  the API agrees with H(P, Q) - H(P) computed by the same framework's
                          cross-entropy (its `identity="cross_entropy"` adapter)

Properties compare the API with itself or with its framework, so they hold or fail whatever the
oracle says; each record states both sides and the tolerance used.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from . import isolation, judge
from .cases import Case, Distribution
from .conventions import Convention
from .dtypes import DTYPES
from .frameworks import DEVICES, Api
from .kinds import check_id, start_record
from .oracle import Expectation
from .results import Record, summarize
from .runner import Check, Outcome, execute, weights_for

PROPERTIES = ("self_zero", "non_negative", "reduction_consistency", "permutation_invariance", "cross_entropy_identity")


@dataclass(frozen=True)
class PropertyCheck:
    case: Case
    api: Api
    prop: str
    device: str
    dtype: str
    partner: Api | None = None  # the framework's cross-entropy identity, for cross_entropy_identity

    @property
    def options(self) -> dict:
        return dict(self.api.options[0])

    @property
    def id(self) -> str:
        options = self.api.option_label(self.options)
        return check_id(self.case.id, self.api.name, options, self.device, self.dtype, self.prop)

    def record(self) -> Record:
        """The check's record before it runs (also what a crash of its process is recorded as)."""
        case = self.case
        return start_record(
            self,
            "property",
            case_id=case.id,
            case_hash=case.hash,
            options={**self.options, "property": self.prop},
            shape=case.shape,
            tags=case.tags,
        )


def plan(
    cases: Iterable[Case], apis: Iterable[Api], devices: Iterable[str] = DEVICES, dtypes: Iterable[str] = DTYPES
) -> list[PropertyCheck]:
    apis = list(apis)
    identity = {a.framework: a for a in apis if a.identity == "cross_entropy"}
    checks = []
    for case in cases:
        for prop in case.properties:
            for api in apis:
                if prop == "reduction_consistency" and len(_reduction_options(api)) < 2:
                    continue
                partner = identity.get(api.framework)
                if prop == "cross_entropy_identity" and (api.identity or partner is None):
                    continue
                for device in devices:
                    if device in api.devices:
                        for dtype in dtypes:
                            if case.dtypes is None or dtype in case.dtypes:
                                checks.append(PropertyCheck(case, api, prop, device, dtype, partner))
    return checks


def run_property_check(check: PropertyCheck) -> Record:
    started = check.record()
    with isolation.checked(started):  # what escapes the property's own executions (a bug in klconf) lands here
        record = _RUNNERS[check.prop](check).record
        record.check, record.check_id = "property", check.id
        record.options = {**record.options, "property": check.prop}
        isolation.note_side_effects(record, record.extra.get("side_effects", []))  # the property's verdict is later
        return record
    return started


def _check(
    check: PropertyCheck, case: Case | None = None, options: dict | None = None, api: Api | None = None
) -> Check:
    api = api or check.api
    return Check(case or check.case, api, tuple((options or api.options[0]).items()), check.device, check.dtype)


def _ran(outcome: Outcome) -> bool:
    return outcome.observed is not None


def _parts(outcome: Outcome) -> tuple[np.ndarray, Expectation, Convention]:
    """The observation, expectation and convention of an outcome that ran (the runner sets all three together)."""
    observed, expectation, convention = outcome.observed, outcome.expectation, outcome.convention
    assert observed is not None and expectation is not None and convention is not None, (
        f"{outcome.record.check_id}: the check did not run to an observation"
    )
    return observed, expectation, convention


def _tolerance(outcome: Outcome, check: PropertyCheck) -> np.ndarray:
    factor = check.api.tolerance.factor if check.api.tolerance else 1.0
    return judge.tolerance(_parts(outcome)[1], check.dtype, check.device, factor)


def _verdict(record: Record, observed: np.ndarray, reference: np.ndarray, tol: np.ndarray, what: str) -> None:
    """Pass when observed and reference agree (NaN with NaN, inf with inf) within tol."""
    observed, reference = np.asarray(observed, np.float64), np.asarray(reference, np.float64)
    record.expected, record.observed = summarize(reference), summarize(observed)
    if observed.shape != reference.shape:
        record.verdict, record.kind = "fail", "shape"
        record.message = f"{what}: shapes {list(observed.shape)} and {list(reference.shape)} differ"
        return
    with np.errstate(invalid="ignore"):
        diff = np.abs(observed - reference)
        same_special = (np.isnan(observed) & np.isnan(reference)) | (observed == reference)
        bad = ~same_special & ~(diff <= tol)
    new_nan = np.isnan(observed) & ~np.isnan(reference)
    finite = np.isfinite(diff)
    record.abs_error = float(diff[finite].max()) if finite.any() else None
    tol_b = np.broadcast_to(tol, diff.shape)
    record.tolerance = float(tol_b.max()) if tol_b.size else None
    record.headroom = float(np.max(np.where(finite, diff / np.maximum(tol_b, 1e-300), 0))) if diff.size else 0.0
    if bad.any():
        i = tuple(int(x) for x in np.argwhere(bad)[0])
        record.verdict, record.kind = "fail", "nan" if new_nan[i] else "value"
        record.message = (
            f"{what}: at {list(i)} {observed[i]:.9g} vs {reference[i]:.9g} "
            f"(|diff| {diff[i]:.3g}, tolerance {np.broadcast_to(tol, diff.shape)[i]:.3g})"
        )
    else:
        record.verdict, record.kind, record.message = "pass", None, ""


def _self_zero(check: PropertyCheck) -> Outcome:
    derived = dataclasses.replace(check.case, id=f"{check.case.id}@self", q=check.case.p, broadcast=False)
    outcome = execute(_check(check, derived))
    if _ran(outcome):
        observed, expectation, _ = _parts(outcome)
        _verdict(
            outcome.record, observed, np.zeros_like(expectation.value), _tolerance(outcome, check), "KL(P||P) is not 0"
        )
    return outcome


def _non_negative(check: PropertyCheck) -> Outcome:
    outcome = execute(_check(check))
    record = outcome.record
    if not _ran(outcome):
        return outcome
    observed, expectation, conv = _parts(outcome)
    if check.case.out_of_domain or not _normalized(check.case):
        record.verdict, record.reason = "unsupported", "the inputs are not normalised distributions"
    elif conv.reduction == "none" and conv.elementwise == "p*log(p/q)":
        record.verdict, record.reason = "unsupported", "elementwise p*log(p/q) terms may be negative"
    else:
        floor = np.where(np.isnan(observed), np.nan, np.minimum(observed, 0.0))
        _verdict(record, floor, np.zeros_like(expectation.value), _tolerance(outcome, check), "negative KL")
    return outcome


def _normalized(case: Case) -> bool:
    sides = [case.p, case.q]
    if any(d.space != "probs" for d in sides):
        return True  # softmax of logits is normalised
    return all(np.allclose(d.values.sum(axis=-1), 1.0, rtol=0, atol=1e-12) for d in sides)


def _reduction_options(api: Api) -> list[dict]:
    default = api.options[0]
    same_otherwise = [
        o for o in api.options if "reduction" in o and all(o[k] == default[k] for k in o if k != "reduction")
    ]
    return same_otherwise


def _reduction_consistency(check: PropertyCheck) -> Outcome:
    outcomes = [execute(_check(check, options=o)) for o in _reduction_options(check.api)]
    base = outcomes[0]
    if not all(_ran(o) for o in outcomes):
        return next(o for o in outcomes if not _ran(o))
    totals, tols, labels = [], [], []
    for o in outcomes:
        factor = _total_factor(o, check.case.shape)
        if factor is None:
            continue
        totals.append(float(np.sum(_parts(o)[0])) * factor)
        tols.append(float(np.sum(_tolerance(o, check))) * factor)
        labels.append(f"{o.record.options.get('reduction')}")
    reference, tol = totals[0], tols[0]
    observed = np.array(totals)
    _verdict(
        base.record,
        observed,
        np.full(observed.shape, reference),
        np.array(tols) + tol,
        f"reductions {labels} imply different totals",
    )
    base.record.extra["totals"] = dict(zip(labels, totals))
    return base


def _total_factor(outcome: Outcome, shape: tuple) -> float | None:
    """What to multiply the summed output by to get the total KL, from the declared reduction."""
    conv = _parts(outcome)[2]
    rows, classes = int(np.prod(shape[:-1])), shape[-1]
    if conv.reduction in ("none", "per_row", "sum"):
        return 1.0
    if conv.reduction == "mean_all":
        return float(rows * classes)
    if conv.reduction == "mean_batch":
        return float({"dim0": shape[0], "rows": rows, "batch": shape[0] if len(shape) > 1 else 1}[conv.batch_divisor])
    return None  # weighted means depend on the weights


def _permutation_invariance(check: PropertyCheck) -> Outcome:
    case = check.case
    seed = int(hashlib.sha256(case.id.encode()).hexdigest()[:8], 16)
    perm = np.random.default_rng(seed).permutation(case.shape[-1])

    def permuted(d: Distribution) -> Distribution:
        return Distribution({d.space: d.values[..., perm].tolist()})

    derived = dataclasses.replace(case, id=f"{case.id}@permuted", p=permuted(case.p), q=permuted(case.q))
    original, moved = execute(_check(check)), execute(_check(check, derived))
    if not (_ran(original) and _ran(moved)):
        return original if not _ran(original) else moved
    observed = _parts(moved)[0]
    original_observed, _, original_conv = _parts(original)
    if original_conv.reduction == "none":
        observed = observed[..., np.argsort(perm)]
    tol = _tolerance(original, check) + _tolerance(moved, check)
    _verdict(original.record, observed, original_observed, tol, "permuting the classes changed the result")
    return original


def _cross_entropy_identity(check: PropertyCheck) -> Outcome:
    api_out = execute(_check(check))
    if not _ran(api_out):
        return api_out
    partner = check.partner
    assert partner is not None, f"{check.id}: cross_entropy_identity is planned only with a partner cross-entropy"
    per_row_options = next((o for o in partner.options if partner.convention(o).reduction == "per_row"), None)
    if per_row_options is None:
        record = api_out.record
        record.verdict, record.reason = "unsupported", f"{partner.name} has no per-row option"
        return api_out
    identity = execute(_check(check, options=per_row_options, api=partner))
    if not _ran(identity):
        record = api_out.record
        record.verdict, record.reason = (
            identity.record.verdict,
            f"{partner.name}: {identity.record.reason or identity.record.message}",
        )
        return api_out
    per_row = _parts(identity)[0]  # H(P, Q) - H(P) per row, from the framework's cross-entropy
    observed, _, conv = _parts(api_out)
    weights = weights_for(check.case.shape) if check.options.get("sample_weight") else None
    row_tol = _tolerance(identity, check)
    api_tol = _tolerance(api_out, check)
    what = f"{check.api.name} differs from {partner.name}"
    if conv.reduction == "none":  # compare elementwise outputs through their row sums
        _verdict(api_out.record, observed.sum(axis=-1), per_row, row_tol + api_tol.sum(axis=-1), what)
    else:
        reference = _apply_reduction(per_row, conv, check.case.shape, weights)
        _verdict(
            api_out.record,
            observed,
            reference,
            api_tol + _apply_reduction(row_tol, conv, check.case.shape, weights),
            what,
        )
    return api_out


def _apply_reduction(per_row: np.ndarray, conv, shape: tuple, weights) -> np.ndarray:
    values = np.asarray(per_row, np.float64)
    if weights is not None:
        values = values * weights
    rows, classes = int(np.prod(shape[:-1])), shape[-1]
    r = conv.reduction
    if r in ("none", "per_row"):
        return values
    total = np.sum(values)
    divisor = {
        "sum": 1.0,
        "mean_all": rows * classes,
        "mean_batch": {"dim0": shape[0], "rows": rows, "batch": shape[0] if len(shape) > 1 else 1}[conv.batch_divisor],
        "mean_weighted": np.sum(weights) if weights is not None else rows,
    }[r]
    return np.asarray(total / divisor if divisor else np.nan)


_RUNNERS = {
    "self_zero": _self_zero,
    "non_negative": _non_negative,
    "reduction_consistency": _reduction_consistency,
    "permutation_invariance": _permutation_invariance,
    "cross_entropy_identity": _cross_entropy_identity,
}
