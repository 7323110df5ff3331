"""One distribution check: a case's P and Q built by one library, on a device, in a dtype, against the closed form.

The parameters are rounded once to the dtype and the closed form is evaluated at exactly
those values, so the expected value carries no input rounding. The tolerance of a batch
element is conformance.judge's:

    tol = u(dtype) * M * (C_ELEMENT + LAMBDA * sqrt(n)) * device factor * override factor

with n the closed form's number of terms and M its conditioning,

    M = sum_j |t_j|  +  sum_i |theta_i dKL/dtheta_i|,

the first sum over the formula's terms (the cancellation a float evaluation of it faces:
lgamma/digamma terms of 10^2 that cancel to a KL of 10^-2 cannot be accurate to u * KL), the
second over every parameter element (a library that rounds once while deriving its own
parameters from ours -- rate = 1/scale, logits from probs, a normalised probability vector --
perturbs theta_i by u relatively). An override widens this for one library, pair and dtype,
and must name its reason; the reason is written into the record.

`run_check` never raises for anything a library does: a pair it does not register (or that it
declines with NotImplementedError) is `unsupported`, any other exception of any kind is `error`,
a non-real output fails with its kind (conformance/outputs.py).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import mpmath
import numpy as np

from .. import isolation, judge, outputs
from ..dtypes import round_to
from ..frameworks import DEVICES, Unavailable, binding
from ..kinds import check_id, start_record
from ..oracle import DIGITS, Expectation
from ..results import Record, summarize
from . import certify, closed_forms
from .cases import DistributionCase
from .families import FAMILIES
from .libraries import Library, build, handle

CHECK = "distribution"
DTYPES = ("float32", "float64")
_STEP = mpmath.mpf(10) ** -20  # relative step of the central differences for sensitivities


@dataclass(frozen=True)
class DistributionCheck:
    case: DistributionCase
    library: Library
    device: str
    dtype: str

    @property
    def options(self) -> dict:
        return {}

    @property
    def id(self) -> str:
        return check_id(self.case.id, self.library.name, None, self.device, self.dtype)

    def record(self) -> Record:
        """The check's record before it runs (also what a crash of its process is recorded as)."""
        case = self.case
        return start_record(
            self,
            CHECK,
            case_id=case.id,
            case_hash=case.hash,
            shape=case.batch,
            tags=case.tags,
            convention=f"KL({case.p.family} || {case.q.family}), batch {list(case.batch)}",
            extra={"pair": case.pair},
        )


def plan(
    cases: Iterable[DistributionCase],
    libraries: Iterable[Library],
    devices: Iterable[str] = DEVICES,
    dtypes: Iterable[str] = DTYPES,
) -> list[DistributionCheck]:
    libraries, devices, dtypes = list(libraries), tuple(devices), [d for d in dtypes if d in DTYPES]
    return [
        DistributionCheck(case, lib, device, dtype)
        for case in cases
        for lib in libraries
        for device in devices
        for dtype in dtypes
        if dtype in case.dtypes
    ]


# --------------------------------------------------------------------------- expected values


@functools.lru_cache(maxsize=512)
def fed_params(case: DistributionCase, side: str, dtype: str) -> dict:
    """The parameter values a library is fed: the case's float64 values rounded once to dtype."""
    params = (case.p if side == "p" else case.q).params
    out = {}
    for name, values in params.items():
        rounded = round_to(values, dtype)
        rounded.setflags(write=False)
        out[name] = rounded
    return out


@functools.lru_cache(maxsize=512)
def expectation(case: DistributionCase, dtype: str) -> Expectation:
    """The closed form at the fed values, with its conditioning as the magnitude, certified in arb."""
    p, q = fed_params(case, "p", dtype), fed_params(case, "q", dtype)
    values, magnitude, counts = closed_forms.evaluate(case.p.family, p, case.q.family, q, case.batch)
    magnitude = magnitude + sensitivity(case)
    exp = Expectation(value=values, magnitude=magnitude, terms=int(counts.max(initial=1)))
    return certify.certified(exp, case.p.family, p, case.q.family, q, case.batch)


@functools.lru_cache(maxsize=256)
def sensitivity(case: DistributionCase) -> np.ndarray:
    """sum_i |theta_i dKL/dtheta_i| per batch element, by central differences in mpmath at the
    case's float64 parameters. Counts (exact in every dtype) and zeros (no relative rounding)
    are skipped; where a step crosses a support boundary (the KL jumps to inf) the one-sided
    difference is used."""
    out = np.zeros(case.batch, np.float64)
    pf, qf = case.p.family, case.q.family
    with mpmath.workdps(DIGITS + 10):
        for index in np.ndindex(*case.batch):
            p = closed_forms.element_params(pf, case.p.params, case.batch, index)
            q = closed_forms.element_params(qf, case.q.params, case.batch, index)
            base = _kl(pf, p, qf, q)
            if base == closed_forms.INF:
                continue
            total = mpmath.mpf(0)
            for side, family, params in (("p", pf, p), ("q", qf, q)):
                for name in params:
                    if FAMILIES[family].param(name).domain == "count":
                        continue
                    for path in _paths(params[name]):
                        total += abs(_derivative(pf, p, qf, q, side, name, path, base))
            out[index] = float(total)
    return out


def _kl(pf, p, qf, q):
    terms = closed_forms.kl_terms(pf, p, qf, q)
    return closed_forms.INF if any(t == closed_forms.INF for t in terms) else mpmath.fsum(terms)


def _paths(value, prefix=()):
    if isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))
    else:
        yield prefix


def _derivative(pf, p, qf, q, side, name, path, base):
    """theta * dKL/dtheta for one parameter element."""

    def at(scale):
        params = {"p": _copy(p), "q": _copy(q)}
        target = params[side]
        holder, key = target, name
        for i in path:
            holder, key = (holder[key], i)
        holder[key] = holder[key] * scale
        return _kl(pf, params["p"], qf, params["q"])

    theta = _get(p if side == "p" else q, name, path)
    if theta == 0:
        return 0
    up, down = at(1 + _STEP), at(1 - _STEP)
    finite = [v != closed_forms.INF for v in (up, down)]
    if all(finite):
        return (up - down) / (2 * _STEP)
    if finite[0]:
        return (up - base) / _STEP
    if finite[1]:
        return (base - down) / _STEP
    return 0


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _get(params, name, path):
    value = params[name]
    for i in path:
        value = value[i]
    return value


# --------------------------------------------------------------------------- one check


def run_check(check: DistributionCheck) -> Record:
    record = check.record()
    with isolation.checked(record):  # a library's exception of any kind, a hang, or a bug in klconf itself
        _run(check, record)
    return record


def _run(check: DistributionCheck, record: Record) -> None:
    case, lib = check.case, check.library
    missing = [f for f in (case.p.family, case.q.family) if lib.constructor(f) is None]
    if missing:
        record.verdict = "unsupported"
        record.reason = f"{lib.name} has no {' or '.join(sorted(set(missing)))} distribution"
        return
    try:
        h = handle(lib)
        if check.device not in binding(lib.framework).devices(h):
            raise Unavailable(f"{lib.framework} sees no {check.device} device")
    except Unavailable as exc:
        record.verdict, record.reason = "skip", str(exc)
        return
    record.framework_version = lib.versions(h)
    override = lib.tolerance(case.p.family, case.q.family, check.dtype)
    if override:
        record.tolerance_override = f"x{override.factor:g}: {override.reason}"
    exp = expectation(case, check.dtype)
    record.expected = summarize(exp.value)
    record.expected_bound = judge.largest_bound(np.asarray(exp.value, np.float64), exp.bound)  # until judged
    record.expected_certified = exp.provenance

    to_numpy = binding(lib.framework).to_numpy
    with lib.context(h, check.dtype, check.device), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with isolation.ApiCall():
            p = build(lib, h, case.p.family, fed_params(case, "p", check.dtype), check.dtype, check.device)
            q = build(lib, h, case.q.family, fed_params(case, "q", check.dtype), check.dtype, check.device)
            record.extra["classes"] = f"{type(p).__name__} || {type(q).__name__}"
            registered = h.lookup(type(p), type(q)) is not None
        if not registered:
            record.verdict = "unsupported"
            record.reason = f"{lib.name} registers no KL for {type(p).__name__} || {type(q).__name__}"
            return
        try:
            with isolation.ApiCall():
                out = h.kl(p, q)
                found = outputs.problems(binding(lib.framework), h, out, (), None, (), check.dtype)
                observed, dtype_read = (None, None) if found else to_numpy(h, out)
        except isolation.ApiRaised as exc:
            if not isinstance(exc.original, NotImplementedError):
                raise
            record.verdict = "unsupported"  # registered, but declined for these parameters
            record.reason = (
                f"{type(p).__name__} || {type(q).__name__} is registered but raises "
                f"NotImplementedError for these parameters: {exc.original}"
            )
            return
    record.warnings = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    if observed is None:
        record.verdict, (record.kind, record.message) = "fail", outputs.as_kind(found)
        return
    record.output_dtype = dtype_read

    verdict = judge.judge(exp, observed, check.dtype, check.device, override.factor if override else 1.0)
    record.take_judgement(verdict, observed, exp.value)
    if verdict.verdict == "fail":
        record.message = f"{case.pair} via {record.extra['classes']}: {verdict.message}{_inputs(case, check, verdict)}"
        record.diagnosis = f"reproduce: {reproduction(check)}"


def _inputs(case: DistributionCase, check: DistributionCheck, verdict) -> str:
    """The parameters of the worst batch element, as fed."""
    if verdict.worst_index is None or len(verdict.worst_index) != len(case.batch):
        return ""
    index = tuple(verdict.worst_index)
    parts = []
    for side, family in (("p", case.p.family), ("q", case.q.family)):
        params = closed_forms.element_params(family, fed_params(case, side, check.dtype), case.batch, index)
        shown = ", ".join(f"{k}={_short(v)}" for k, v in params.items())
        parts.append(f"{side}={family}({shown})")
    return f" [inputs there: {'; '.join(parts)}]"


def _short(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return f"{float(value):.9g}"


def reproduction(check: DistributionCheck) -> str:
    return (
        f"pytest --pyargs conformance.checks.test_distributions -k '{check.case.id} and {check.dtype}' "
        f"--klconf-framework {check.library.framework} --klconf-device {check.device}"
    )
