"""One check: a case fed to one API call, with options, on a device, in a dtype.

`run_check` never raises for anything the API does: an exception of any kind, a NaN, a wrong
shape, a complex output or a mutated input becomes a Record with its verdict (isolation.checked
around the check, isolation.ApiCall around the call), and the caller goes on.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from . import conventions, isolation, judge, oracle, outputs, repro
from .cases import Case
from .dtypes import DTYPES, FORMATS, round_to

if TYPE_CHECKING:
    from .gradients import GradientCheck
from .frameworks import DEVICES, Api, Unavailable, binding
from .kinds import check_id, start_record
from .results import Record, summarize

DIAGNOSE_LIMIT = 20000  # elements: above this a failure is not re-evaluated under alternative conventions


@dataclass(frozen=True)
class Check:
    case: Case
    api: Api
    options_items: tuple
    device: str
    dtype: str

    @property
    def options(self) -> dict:
        return dict(self.options_items)

    @property
    def id(self) -> str:
        return check_id(self.case.id, self.api.name, self.api.option_label(self.options), self.device, self.dtype)

    def record(self) -> Record:
        """The check's record before it runs: its identity (also what a crash of its process is recorded as)."""
        api, case = self.api, self.case
        return start_record(
            self,
            "value",
            case_id=case.id,
            case_hash=case.hash,
            shape=case.shape,
            tags=case.tags,
            tolerance_override=f"x{api.tolerance.factor:g}: {api.tolerance.reason}" if api.tolerance else "",
        )


def plan(
    cases: Iterable[Case], apis: Iterable[Api], devices: Iterable[str] = DEVICES, dtypes: Iterable[str] = DTYPES
) -> list[Check]:
    """Every case x api x options x device x dtype the adapters and cases allow."""
    cases, apis, devices, dtypes = list(cases), list(apis), tuple(devices), tuple(dtypes)
    checks = []
    for case in cases:
        for api in apis:
            for options in api.options:
                for device in devices:
                    if device not in api.devices:
                        continue
                    for dtype in dtypes:
                        if case.dtypes is None or dtype in case.dtypes:
                            checks.append(Check(case, api, tuple(options.items()), device, dtype))
    return checks


def weights_for(shape: tuple) -> np.ndarray:
    """Deterministic per-row sample weights, exact in every dtype: 0.5, 1, 1.5, 2, 0.5, ..."""
    rows = shape[:-1]
    return (0.5 + 0.5 * (np.arange(int(np.prod(rows, dtype=np.int64))) % 4)).reshape(rows)


@functools.lru_cache(maxsize=32)  # bounded: a 256k-class case holds megabytes per entry
def _truth_in_space(case: Case, side: str, space: str) -> np.ndarray:
    dist = case.p if side == "p" else case.q
    return oracle.to_space(dist.values, dist.space, space)


@functools.lru_cache(maxsize=64)
def fed_value(case: Case, side: str, space: str, dtype: str) -> np.ndarray:
    """The exact values fed for one side of a case: converted in mpmath, rounded once to dtype."""
    values = round_to(_truth_in_space(case, side, space), dtype)
    values.setflags(write=False)
    return values


def fed_arguments(case: Case, conv: conventions.Convention, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Both arguments in call order, class axis last."""
    args = []
    for name, space in zip(conv.arguments, conv.input_space):
        side = "p" if name == conv.p_argument else "q"
        args.append(fed_value(case, side, space, dtype))
    first, second = args
    return first, second


def feed_axis(class_axis: int | None, ndim: int) -> int | None:
    """Where the class axis goes for an API that wants it elsewhere than last (None: leave it)."""
    if class_axis is None or class_axis == -1 or ndim < 2:
        return None
    return class_axis if class_axis < ndim else None


@functools.cache
def _framework_version(framework: str) -> dict:
    b = binding(framework)
    return b.version(b.handle())


@functools.cache
def _devices(framework: str) -> tuple[str, ...]:
    b = binding(framework)
    return tuple(b.devices(b.handle()))


@functools.cache
def framework_info(framework: str) -> dict:
    """A framework's versions, devices and numerics settings, for the results file's run information."""
    b = binding(framework)
    fw = b.handle()
    return {
        "type": "framework",
        "name": framework,
        "versions": _framework_version(framework),
        "devices": b.devices(fw),
        "settings": b.settings(fw),
    }


def declared(check: Check | GradientCheck) -> conventions.Convention:
    """The API's declared convention, with its clip epsilon rounded as the API rounds it."""
    conv = check.api.convention(check.options)
    if conv.clip_epsilon is not None:
        conv = conv.replace(clip_epsilon=float(round_to(np.array(conv.clip_epsilon), check.dtype)))
    return conv


@dataclass
class Outcome:
    """A check's record plus the full arrays behind it (properties compare observations)."""

    record: Record
    observed: np.ndarray | None = None
    expectation: oracle.Expectation | None = None
    convention: conventions.Convention | None = None


def run_check(check: Check) -> Record:
    return execute(check).record


def execute(check: Check) -> Outcome:
    outcome = Outcome(check.record())
    with isolation.checked(outcome.record):
        _run(check, outcome)
    return outcome


def prepare(check, record: Record):
    """What every runner settles before calling an API: installed, accepts this input, device present.
    Returns (binding, framework handle), or None with the record's verdict and reason set."""
    api, case = check.api, check.case
    b = binding(api.framework)
    missing = b.available() or api.missing()
    if missing:
        record.verdict, record.reason = "skip", missing
        return None
    if check.dtype not in api.dtypes:
        record.verdict, record.reason = "unsupported", f"{api.name} does not accept {check.dtype}"
        return None
    if case.broadcast and not api.broadcasts:
        record.verdict, record.reason = "unsupported", f"{api.name} does not broadcast P against Q"
        return None
    try:
        fw = b.handle()
    except Unavailable as exc:
        record.verdict, record.reason = "skip", str(exc)
        return None
    if check.device not in _devices(api.framework):
        record.verdict, record.reason = "skip", f"{api.framework} sees no {check.device} device"
        return None
    record.framework_version = _framework_version(api.framework)
    absent = api.absent_from(record.framework_version)
    if absent:
        record.verdict, record.reason = "unsupported", absent
        return None
    return b, fw


def to_native(b, fw, check, fed: tuple, axis: int | None, weights) -> tuple[list, object]:
    """The fed arguments (class axis moved where the API wants it) and weights as native arrays."""
    native = [b.to_native(fw, a if axis is None else np.moveaxis(a, -1, axis), check.dtype, check.device) for a in fed]
    native_w = b.to_native(fw, weights, check.dtype, check.device) if weights is not None else None
    return native, native_w


def call_api(b, fw, call, native: list, names, dtype: str, keeps_dtype: bool, mutation: bool = True):
    """One guarded call (isolation.ApiCall) and its output read back: (float64 values, output dtype) or
    (None, problems) when the output's type, aliasing or the inputs' mutation is wrong (conformance/outputs.py).
    Anything the API raises comes out as isolation.ApiRaised; a hang as isolation.CheckTimeout."""
    with isolation.ApiCall():
        before = outputs.inputs_before(b, fw, native) if mutation else None
        return read_output(b, fw, call(), native if mutation else (), before, names, dtype, keeps_dtype)


def read_output(b, fw, out, native, before, names, dtype: str, keeps_dtype: bool):
    """A call's output read back, as `call_api` returns it; `native` and `before` the inputs and their values
    before the call, where their mutation is checked (else () and None)."""
    found = outputs.problems(b, fw, out, native, before, names, dtype, keeps_dtype)
    if found:
        return None, found
    return b.to_numpy(fw, out)


def _run(check: Check, outcome: Outcome) -> None:
    api, case, record = check.api, check.case, outcome.record
    ready = prepare(check, record)
    if ready is None:
        return
    b, fw = ready
    conv = declared(check)
    record.convention = conv.describe()
    fed = fed_arguments(case, conv, check.dtype)
    args = tuple(np.broadcast_arrays(*fed)) if case.broadcast else fed  # the oracle sees the broadcast terms
    weights = weights_for(case.shape) if check.options.get("sample_weight") else None
    exp = conventions.expectation(conv, args, weights)
    record.expected = summarize(exp.value)

    axis = feed_axis(conv.class_axis, len(case.shape))
    context = b.call_context(fw, check.dtype, check.device) if b.call_context else contextlib.nullcontext()
    try:
        with context, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            record.settings = b.check_settings(fw, check.dtype, check.device)
            native, native_w = to_native(b, fw, check, fed, axis, weights)
            observed, read = call_api(
                b,
                fw,
                lambda: api.call(fw, native[0], native[1], check.options, native_w),
                native,
                conv.arguments,
                check.dtype,
                api.keeps_dtype,
            )
        record.warnings = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    except (isolation.ApiRaised, isolation.CheckTimeout) as exc:  # a recorded result, the run goes on
        isolation.fail_record(record, exc)
        repro.attach(record, check, fed, weights, conv, exp.value)
        return
    if observed is None:
        record.verdict, (record.kind, record.message) = "fail", outputs.as_kind(read)
        repro.attach(record, check, fed, weights, conv, exp.value)
        return
    record.output_dtype = read
    if axis is not None and observed.ndim == len(case.shape):
        observed = np.moveaxis(observed, axis, -1)

    factor = api.tolerance.factor if api.tolerance else 1.0
    outcome.observed, outcome.expectation, outcome.convention = observed, exp, conv
    verdict = judge.judge(exp, observed, check.dtype, check.device, factor, record.output_dtype)
    record.take_judgement(verdict, observed, exp.value)
    if verdict.verdict == "fail":
        record.message = _with_inputs(record.message, verdict.worst_index, args, conv)
        record.diagnosis = diagnose(conv, args, weights, observed, check, record.output_dtype)
        repro.attach(record, check, fed, weights, conv, exp.value, verdict.worst_index)
        if verdict.kind == "inf":
            record.diagnosis = f"{overflow_hint(args, conv, check.dtype)}{record.diagnosis}"


def _with_inputs(message: str, index, args, conv) -> str:
    """Name the inputs at the worst element when the output is elementwise."""
    if index is None or len(index) != args[0].ndim:
        return message
    at = tuple(index)
    shown = ", ".join(f"{name}={float(a[at]):.9g}" for name, a in zip(conv.arguments, args))
    return f"{message} [inputs there: {shown}]"


def overflow_hint(args, conv: conventions.Convention, dtype: str) -> str:
    """An infinity where the value is finite is often an intermediate overflow: say so when p/q can overflow."""
    if conv.p_space != "prob" or conv.q_space != "prob":
        return ""
    p, q = np.asarray(args[conv.p_index], np.float64), np.asarray(args[1 - conv.p_index], np.float64)
    if conv.clip_epsilon is not None:
        p, q = np.clip(p, conv.clip_epsilon, 1), np.clip(q, conv.clip_epsilon, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(p > 0, p / q, 0.0)
    top, limit = float(np.nanmax(ratio)) if ratio.size else 0.0, FORMATS[dtype].max
    if top > limit:
        return (
            f"p/q reaches {top:.3g}, beyond the largest {dtype} ({limit:.6g}): a ratio computed in {dtype} overflows. "
        )
    return ""


def diagnose(
    conv: conventions.Convention, args, weights, observed: np.ndarray, check: Check, output_dtype: str | None = None
) -> str:
    """Which single change to the declared convention explains the observation, if any."""
    if args[0].size > DIAGNOSE_LIMIT:
        return "not diagnosed: input too large to re-evaluate alternative conventions"
    factor = check.api.tolerance.factor if check.api.tolerance else 1.0
    shape = np.broadcast_shapes(*(np.shape(a) for a in args))
    matches = []
    for label, alternative in conventions.variants(conv):
        if oracle.output_shape(shape, alternative.spec()) != observed.shape:
            continue  # its values could not match in shape: judged, it fails without being evaluated
        exp = conventions.expectation(alternative, args, weights)
        if judge.judge(exp, observed, check.dtype, check.device, factor, output_dtype).verdict == "pass":
            matches.append(label)
    if not matches:
        return "no single change to the declared convention explains the observed values"
    return "observed values match the declared convention with " + " or ".join(matches)
