"""Verifying an equivalent: the source call and the composed snippet, side by side, on the corpus.

For every tensor-level case and dtype (float64 and float32, CPU) the case's P and Q become
probabilities in that dtype; the source is fed them in its own input spaces (log P and log Q
computed from those very probabilities, where it takes log-probabilities or logits) and laid
out with classes on its class axis; the snippet's `equivalent` gets the same probabilities in
the same layout. The two outputs are judged with klconf's tolerances: the source's output
stands as the expected value and the oracle, under the source's convention, sizes the
tolerance (the case's conditioning), doubled because both sides round.

Where they differ, the reason is computed, not listed: which side departs from the source's
inferred convention on this case, and which single convention field would explain what that
side returned, tried field by field as `klconf run` diagnoses failures. (How both sides are fed, once
per case and dtype for every target: `fed.py`.)

Two kinds of case are reported apart and do not decide the verdict: a case marked out_of_domain
holds inputs that are not probabilities (NaN, negative, above 1), outside an equivalent's
contract; and float16 runs, where frameworks legitimately differ in how they accumulate (the
contract is float64 and float32; bfloat16 has no NumPy type to hand the equivalent).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .. import isolation, judge, oracle
from ..cases import Case
from ..dtypes import FORMATS, round_to
from ..inference.candidates import Candidate
from ..inference.elimination import judged_dtype
from ..runner import DIAGNOSE_LIMIT
from .compose import Equivalent
from .fed import Fed, as_basis, broadcast_terms, class_last, in_space, source_call

DTYPES = ("float64", "float32")  # the contract
HALF = ("float16",)  # checked apart
SCOPES = ("contract", "out_of_domain", "float16")
# An equivalent's call on one corpus case takes milliseconds (its first compile well under a second, about 0.1 s
# for JAX): a call still running after this long hangs, and the run's longer limit (sized for the largest API
# calls) would keep a worker idle for minutes. A hang outside Python (MLX's empty-batch spin,
# cases/expectations/mlx.yaml) costs the worker this limit plus the watchdog's grace, then a restart.
EQUIVALENT_SECONDS = 10.0
BOTH_ROUND = 2.0  # the source and the equivalent each round: their difference may reach twice a tolerance


@dataclass
class Outcome:
    case: str
    dtype: str
    status: str  # verified | differs | not_applicable
    reason: str = ""
    headroom: float | None = None
    scope: str = "contract"  # one of SCOPES


@dataclass
class Verification:
    outcomes: list[Outcome] = field(default_factory=list)

    def _by_case(self, scope: str) -> dict[str, list[Outcome]]:
        cases: dict[str, list[Outcome]] = {}
        for o in self.outcomes:
            if o.scope == scope:
                cases.setdefault(o.case, []).append(o)
        return cases

    def verified(self, scope: str = "contract") -> list[str]:
        """Cases verified in every dtype that applies (and applicable in at least one)."""
        return [
            case
            for case, outs in self._by_case(scope).items()
            if any(o.status == "verified" for o in outs) and all(o.status != "differs" for o in outs)
        ]

    def differs(self, scope: str = "contract") -> list[dict]:
        """One entry per case that differs in some dtype: the dtypes, and the reason in the first of them."""
        out = []
        for case, outs in self._by_case(scope).items():
            bad = [o for o in outs if o.status == "differs"]
            if bad:
                out.append({"case": case, "dtypes": [o.dtype for o in bad], "reason": bad[0].reason})
        return out

    def not_applicable(self) -> list[dict]:
        return [
            {"case": case, "reason": outs[0].reason}
            for scope in ("contract", "out_of_domain")
            for case, outs in self._by_case(scope).items()
            if all(o.status == "not_applicable" for o in outs)
        ]

    @property
    def worst_headroom(self) -> float | None:
        values = [
            o.headroom
            for o in self.outcomes
            if o.scope == "contract" and o.status == "verified" and o.headroom is not None
        ]
        return max(values) if values else None


def verify(eq: Equivalent, cases: list[Case], device: str = "cpu", dtypes=DTYPES + HALF) -> Verification:
    """Run the source and `eq` on every case and dtype; raises Unavailable when the source cannot run."""
    function = eq.function()
    result = Verification()
    for case in cases:
        for dtype in dtypes:
            if (case.dtypes is not None and dtype not in case.dtypes) or (dtype in HALF and case.out_of_domain):
                continue
            outcome = _verify_one(eq, function, case, dtype, device)
            outcome.scope = "float16" if dtype in HALF else "out_of_domain" if case.out_of_domain else "contract"
            result.outcomes.append(outcome)
    return result


# --------------------------------------------------------------------------- one case


def _verify_one(eq: Equivalent, function, case: Case, dtype: str, device: str) -> Outcome:
    recipe = eq.recipe
    api = recipe.api
    if dtype not in api.dtypes:
        return Outcome(case.id, dtype, "not_applicable", f"{api.name} does not take {dtype}")
    if case.broadcast and not api.broadcasts:
        return Outcome(case.id, dtype, "not_applicable", f"{api.name} does not broadcast P against Q")
    fed = source_call(recipe, case, dtype, device)
    if fed.observation.error is not None:
        return Outcome(case.id, dtype, "not_applicable", f"the source raised {fed.observation.error}")
    try:  # the equivalent runs target-framework code: under the guard and time limit every API call gets
        with isolation.ApiCall(limit=EQUIVALENT_SECONDS), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = function(fed.p, fed.q, fed.weights) if eq.takes_weights else function(fed.p, fed.q)
            value = np.asarray(value, np.float64)
    except isolation.CheckTimeout as exc:
        return Outcome(case.id, dtype, "differs", f"the {eq.target} equivalent did not return: {exc}")
    except isolation.ApiRaised as exc:  # the equivalent failed where the source ran: a difference, recorded
        raised = exc.original
        first = str(raised).strip().splitlines()[0][:300] if str(raised).strip() else ""
        return Outcome(case.id, dtype, "differs", f"the {eq.target} equivalent raised {type(raised).__name__}: {first}")
    return compare(eq, case, fed, value, dtype, device)


def compare(eq: Equivalent, case: Case, fed: Fed, value: np.ndarray, dtype: str, device: str = "cpu") -> Outcome:
    """The equivalent's output `value` for `fed` against the source's, judged; the reason when they differ."""
    api = eq.recipe.api
    factor = api.tolerance.factor if api.tolerance else 1.0
    c = eq.recipe.candidate
    obs = fed.observation
    basis = fed.basis(c)
    source, ours = basis.value, class_last(c, fed.args[0].ndim, np.asarray(value, np.float64))
    judged = judged_dtype(dtype, obs.dtype)
    verdict = judge.judge(basis, ours, judged, device, BOTH_ROUND * factor, obs.dtype)
    if verdict.verdict == "pass":
        return Outcome(case.id, dtype, "verified", headroom=verdict.headroom)
    predicted = fed.predicted(c)
    if predicted is not None and set(c.spaces) != {"prob"}:
        widened = _with_conversion(c, fed, predicted, as_basis(predicted, source), judged, device, BOTH_ROUND * factor)
        if widened is not None:
            verdict = judge.judge(widened, ours, judged, device, BOTH_ROUND * factor, obs.dtype)
            if verdict.verdict == "pass":
                return Outcome(case.id, dtype, "verified", headroom=verdict.headroom)
    return Outcome(
        case.id, dtype, "differs", _reason(eq, case, fed, predicted, source, ours, verdict, judged, device, factor)
    )


def _with_conversion(c: Candidate, fed: Fed, predicted, basis, dtype, device, factor) -> oracle.Expectation | None:
    """The basis with its tolerance widened by what feeding log-probabilities costs.

    The source gets log P rounded to the dtype, and exp of that is not P: the relative error
    is |log P| times the rounding, far above one ulp for tiny probabilities. The equivalent
    gets P itself. So both are held to the exact values of their own inputs: the oracle,
    under the source's convention, for the very probabilities the equivalent got (logits
    read as normalised rows), and the gap between the two exact values joins the tolerance.
    """
    as_given = []
    for i, x in enumerate((fed.p, fed.q)):
        x = x.astype(np.float64)
        space = c.spaces[c.p_index if i == 0 else 1 - c.p_index]
        if space == "logits":
            axis = c.axis(x.ndim)
            with np.errstate(invalid="ignore", divide="ignore"):
                x = x / np.sum(x, axis=axis, keepdims=True)
        as_given.append(x)
    sides = {c.p_index: as_given[0], 1 - c.p_index: as_given[1]}
    args = broadcast_terms((sides[0], sides[1]))
    made = c.replace(spaces=("prob", "prob")).predict(args, fed.weights)
    if made is None or np.shape(made[0].value) != np.shape(predicted.value):
        return None
    exact = made[0].value  # classes last, as `predicted`
    with np.errstate(invalid="ignore"):
        gap = np.where(np.isfinite(exact) & np.isfinite(predicted.value), np.abs(exact - predicted.value), 0.0)
    return _widened(basis, gap, dtype, device, factor)


# --------------------------------------------------------------------------- why they differ


def _reason(eq: Equivalent, case: Case, fed: Fed, predicted, source, ours, verdict, dtype, device, factor) -> str:
    recipe = eq.recipe
    c = recipe.candidate
    if verdict.kind == "shape":
        seen = f"the source returns shape {list(source.shape)}, the {eq.target} equivalent shape {list(ours.shape)}"
    else:
        seen = _at(verdict.worst_index, source, ours, fed, c, eq.target)
    source_fits = predicted is not None and _fits(predicted, source, dtype, device, factor)
    ours_fit = predicted is not None and _fits(predicted, ours, dtype, device, factor)
    if predicted is None:
        why = "the source's convention cannot be evaluated on this case"
    elif not source_fits:
        why = "the source departs from its inferred convention on this case" + _explained(
            c, fed, source, dtype, device, factor, recipe.weights_fed
        )
    elif not ours_fit:
        why = f"the {eq.target} expression departs from the source's convention on this case" + _explained(
            c, fed, ours, dtype, device, factor, recipe.weights_fed
        )
    else:
        why = "each is within tolerance of the source's convention, but they are not within twice it of each other"
    if case.out_of_domain:
        why += " (out-of-domain inputs: not probabilities)"
    return f"{seen}: {why}"


def _at(index, source, ours, fed: Fed, c: Candidate, target: str) -> str:
    if index is None or not source.size:
        return f"the source returns {_show(source)}, the {target} equivalent {_show(ours)}"
    at = tuple(index)
    where = f" at {list(index)}" if source.ndim else ""
    text = f"source {_num(source[at])}, {target} equivalent {_num(ours[at])}{where}"
    p, q = np.broadcast_arrays(fed.p, fed.q)
    axis = c.axis(p.ndim)
    if axis is not None and axis != p.ndim - 1:  # the outputs are judged with classes last
        p, q = np.moveaxis(p, axis, -1), np.moveaxis(q, axis, -1)
    if source.shape == p.shape:  # an elementwise output: P and Q at the same element
        text += f" (p={_num(p[at])}, q={_num(q[at])})"
    return text


def _fits(expectation: oracle.Expectation, value: np.ndarray, dtype: str, device: str, factor: float) -> bool:
    return judge.judge(expectation, value, dtype, device, factor).verdict == "pass"


def _explained(c: Candidate, fed: Fed, value: np.ndarray, dtype, device, factor, weights_fed: bool) -> str:
    if fed.args[0].size > DIAGNOSE_LIMIT:
        return " (not diagnosed further: the input is too large to re-evaluate other conventions)"
    labels = [
        label
        for label, expectation in fed.one_field_away(c, weights_fed)
        if np.shape(expectation.value) == value.shape and _fits(expectation, value, dtype, device, factor)
    ]
    flush = _flushes(c, fed, value, dtype, device, factor)
    if flush:
        labels.append(flush)
    if not labels:
        return "; no single convention field explains it"
    return "; it behaves as " + " or as ".join(labels[:3]) + " here"


def _flushes(c: Candidate, fed: Fed, value: np.ndarray, dtype: str, device: str, factor: float) -> str:
    """Does `value` follow the convention once subnormal numbers are read as zero? Subnormal probabilities
    are in-domain, but a platform that flushes them (XLA on CPU does; so do some TensorFlow kernels) sees
    zeros there, and an intermediate that underflows to a subnormal loses up to the smallest normal
    number. Returns the label of the reading that fits, or ""."""
    smallest = FORMATS[dtype].smallest_normal
    p, q = fed.p.astype(np.float64), fed.q.astype(np.float64)
    subnormal_inputs = any(np.any((x != 0) & (np.abs(x) < smallest)) for x in (p, q))
    readings: list[tuple[str, np.ndarray, np.ndarray]] = [
        ("if subnormal intermediate results were flushed to zero", p, q)
    ]
    if subnormal_inputs:
        with np.errstate(invalid="ignore"):
            p_flushed, q_flushed = (round_to(np.where(np.abs(x) < smallest, 0.0, x), dtype) for x in (p, q))
        readings.append(("if subnormal inputs and results were flushed to zero", p_flushed, q_flushed))
    for label, p_read, q_read in readings:
        sides = {c.p_index: p_read, 1 - c.p_index: q_read}
        args = broadcast_terms([in_space(np.asarray(sides[i], fed.p.dtype), c.spaces[i], dtype) for i in (0, 1)])
        made = c.predict(args, fed.weights)
        if made is None or np.shape(made[0].value) != value.shape:
            continue
        allowance = smallest * np.asarray(made[0].log_scale, np.float64)
        if _fits(_widened(made[0], allowance, dtype, device, factor), value, dtype, device, factor):
            return label
    return ""


def _widened(exp: oracle.Expectation, extra, dtype: str, device: str, factor: float) -> oracle.Expectation:
    """`exp` with the judge's tolerance raised by `extra` (absolute, per output element): the judge's
    tolerance grows linearly with the magnitude, so the magnitude grows by extra / (tolerance per unit)."""
    magnitude = np.asarray(exp.magnitude, np.float64)
    ones = oracle.Expectation(exp.value, np.ones_like(magnitude), exp.terms, 0.0)
    zeros = oracle.Expectation(exp.value, np.zeros_like(magnitude), exp.terms, 0.0)
    per_unit = judge.tolerance(ones, dtype, device, factor) - judge.tolerance(zeros, dtype, device, factor)
    return oracle.Expectation(exp.value, magnitude + np.asarray(extra, np.float64) / per_unit, exp.terms, exp.log_scale)


def _num(x) -> str:
    return f"{float(x):.9g}"


def _show(values: np.ndarray) -> str:
    if values.ndim == 0:
        return _num(values)
    flat = ", ".join(_num(v) for v in values.ravel()[:4])
    return f"shape {list(values.shape)} [{flat}{', ...' if values.size > 4 else ''}]"
