"""Gradient conformance: d(sum of the API's outputs)/d(argument) against the oracle's analytic gradient.

For every differentiable argument an adapter lists (the one carrying Q, and P where the API lets
it be differentiated), the framework's own autodiff (torch autograd, jax.grad, tf.GradientTape)
is compared with `oracle.gradient`, including at zeros, where the record says whether the
gradient came out finite, NaN or infinite.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from . import isolation, judge, oracle, outputs
from .cases import Case
from .dtypes import DTYPES
from .frameworks import DEVICES, Api, binding
from .kinds import check_id, start_record
from .results import Record
from .runner import call_api, declared, fed_arguments, feed_axis, prepare, read_output, to_native, weights_for

MAX_ELEMENTS = 1 << 17  # larger cases (the 128k and 256k vocabularies) are value-checked only


@dataclass(frozen=True)
class GradientCheck:
    case: Case
    api: Api
    options_items: tuple
    device: str
    dtype: str
    wrt: str  # argument name

    @property
    def options(self) -> dict:
        return dict(self.options_items)

    @property
    def id(self) -> str:
        label = self.api.option_label(self.options)
        return check_id(self.case.id, self.api.name, label, self.device, self.dtype, f"d/d{self.wrt}")

    def record(self) -> Record:
        """The check's record before it runs (also what a crash of its process is recorded as)."""
        case = self.case
        return start_record(
            self,
            "gradient",
            case_id=case.id,
            case_hash=case.hash,
            options={**self.options, "wrt": self.wrt},
            shape=case.shape,
            tags=case.tags,
        )


def plan(
    cases: Iterable[Case], apis: Iterable[Api], devices: Iterable[str] = DEVICES, dtypes: Iterable[str] = DTYPES
) -> list[GradientCheck]:
    checks = []
    for case in cases:
        if int(np.prod(case.shape)) > MAX_ELEMENTS or case.out_of_domain:
            continue
        for api in apis:
            if not api.differentiable:
                continue
            for options in api.options:
                for device in devices:
                    if device not in api.devices:
                        continue
                    for dtype in dtypes:
                        if case.dtypes is None or dtype in case.dtypes:
                            for wrt in api.differentiable:
                                checks.append(GradientCheck(case, api, tuple(options.items()), device, dtype, wrt))
    return checks


def run_gradient_check(check: GradientCheck, upcoming: object = None) -> Record:
    """`upcoming`: the check this process runs next, where known. When it is this check's sibling (the same
    call's gradient with respect to its other argument) and the binding takes both from one backward pass
    (`Binding.gradients`), both are computed now and the sibling's kept for it."""
    record = check.record()
    with isolation.checked(record):
        _run(check, record, upcoming)
    return record


def _run(check: GradientCheck, record: Record, upcoming: object = None) -> None:
    api, case = check.api, check.case
    if binding(api.framework).gradient is None:
        record.verdict, record.reason = "unsupported", f"{api.framework} has no automatic differentiation"
        return
    ready = prepare(check, record)
    if ready is None:
        return
    b, fw = ready
    conv = declared(check)
    record.convention = conv.describe()
    fed = fed_arguments(case, conv, check.dtype)
    args = tuple(np.broadcast_arrays(*fed)) if case.broadcast else fed
    index = conv.arguments.index(check.wrt)
    side = "p" if check.wrt == conv.p_argument else "q"
    weights = weights_for(case.shape) if check.options.get("sample_weight") else None
    exp = oracle.gradient(args[conv.p_index], args[1 - conv.p_index], conv.spec(), side, weights)
    if case.broadcast and fed[index].shape != args[index].shape:  # a broadcast input collects its gradient
        exp = _sum_to(exp, fed[index].shape)

    axis = feed_axis(conv.class_axis, len(case.shape))
    kept = _AHEAD.pop((check.id, case.hash), None)
    _AHEAD.clear()  # (a sibling that did not run next never will: its result goes)
    if kept is not None:  # computed with the sibling's, in the call the sibling made for both
        (observed, read), record.warnings = kept.result, kept.warnings
        isolation.noted(kept.changes)
    else:
        observed, read = _observe(check, b, fw, conv, fed, axis, weights, index, record, _sibling(check, upcoming, b))
    if observed is None:
        record.verdict, (record.kind, record.message) = "fail", outputs.as_kind(read)
        return
    record.output_dtype = read
    if axis is not None and observed.ndim == len(case.shape):
        observed = np.moveaxis(observed, axis, -1)

    verdict = judge.judge(
        exp.expectation(),
        observed,
        check.dtype,
        check.device,
        api.tolerance.factor if api.tolerance else 1.0,
        record.output_dtype,
    )
    record.take_judgement(verdict, observed, exp.value)
    record.extra["gradient_class"] = {name: int(n) for name, n in _classes(observed).items() if n}


# The function a gradient differentiates, one per API call, options, dtype, device and weights' shape (the
# weights are a function of the shape, `weights_for`). A framework that compiles what it differentiates
# (JAX: jax.jit of jax.grad, cached by function) then compiles once per input shape and reuses it for every
# case of that shape, where a function made afresh for each check would be traced and compiled again. The
# function reads this check's own weights when it runs (a compiled trace holds the equal values of the check
# that traced it), so an API that writes into its weights cannot change what a later check is fed.
_FUNCTIONS: OrderedDict[tuple, tuple[Callable, dict]] = OrderedDict()
FUNCTIONS_KEPT = 256


def _differentiated(check: GradientCheck, fw, weights: np.ndarray | None, native_w) -> Callable:
    api = check.api
    weights_shape = None if weights is None else weights.shape
    key = (api.name, id(api.call), id(fw), check.options_items, check.dtype, check.device, weights_shape)
    if key not in _FUNCTIONS:
        options = check.options
        fed: dict = {}  # this check's weights, set below at every use

        def fn(x, y):
            return api.call(fw, x, y, options, fed["weights"])

        _FUNCTIONS[key] = (fn, fed)
        while len(_FUNCTIONS) > FUNCTIONS_KEPT:
            _FUNCTIONS.popitem(last=False)
    fn, fed = _FUNCTIONS[key]
    fed["weights"] = native_w
    return fn


def _observe(check, b, fw, conv, fed, axis, weights, index, record, sibling) -> tuple:
    """The framework's gradient for this check, read back: (float64 values, output dtype) or (None, problems).
    With a `sibling` check, from one call that also computes the sibling's (kept in `_AHEAD` for it); where
    that call raises, this check's gradient alone, as without a sibling."""
    api = check.api
    context = b.call_context(fw, check.dtype, check.device) if b.call_context else contextlib.nullcontext()
    with context, warnings.catch_warnings(record=True) as caught:  # an API's exception or hang: isolation.checked
        warnings.simplefilter("always")
        native, native_w = to_native(b, fw, check, fed, axis, weights)
        fn = _differentiated(check, fw, weights, native_w)
        read_back = None
        if sibling is not None:
            other = conv.arguments.index(sibling.wrt)
            call = isolation.ApiCall()
            try:
                with call:
                    outs = b.gradients(fw, fn, native, (index, other))
                    if len(outs) != 2:
                        raise TypeError(f"{b.name}: gradients gave {len(outs)} results for 2 arguments")
                    read_back = [
                        read_output(b, fw, out, (), None, conv.arguments, check.dtype, api.keeps_dtype) for out in outs
                    ]
            except isolation.ApiRaised:
                read_back = None  # (what a call of this gradient alone raises, if anything, is this check's)
        if read_back is None:
            read_back = [
                call_api(
                    b,
                    fw,
                    lambda: b.gradient(fw, fn, native, index),
                    native,
                    conv.arguments,
                    check.dtype,
                    api.keeps_dtype,
                    mutation=False,
                )
            ]
    record.warnings = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    if len(read_back) == 2 and sibling is not None:
        _AHEAD[(sibling.id, sibling.case.hash)] = _Kept(read_back[1], record.warnings, call.changes)
    return read_back[0]


def _sibling(check: GradientCheck, upcoming: object, b) -> GradientCheck | None:
    """`upcoming` where it is the gradient of the same call with respect to another argument and the binding
    computes both in one call: the pair whose second check this one's call serves."""
    if b.gradients is None or not isinstance(upcoming, GradientCheck) or upcoming.wrt == check.wrt:
        return None
    same = upcoming.case is check.case and upcoming.api is check.api and upcoming.options_items == check.options_items
    return upcoming if same and (upcoming.device, upcoming.dtype) == (check.device, check.dtype) else None


@dataclass(frozen=True)
class _Kept:
    """A sibling's gradient, computed in this check's call: its reading, the call's warnings and changes."""

    result: tuple
    warnings: list[str]
    changes: list[str]


# The gradient the previous check computed for the check run next (its sibling), keyed by that check's id and
# case hash: at most one, dropped by whichever check runs next. Two gradients of one call (d/dP and d/dQ of one
# case, options, dtype and device) come from one backward pass: for Keras on JAX, which differentiates eagerly,
# that is one trace of the loss instead of two.
_AHEAD: dict[tuple[str, str], _Kept] = {}


def _sum_to(grad: oracle.Gradient, shape: tuple) -> oracle.Gradient:
    return grad.summed_to(shape)


def _classes(values: np.ndarray) -> dict[str, int]:
    """How many gradient elements came out finite, NaN or infinite."""
    return {
        "finite": int(np.isfinite(values).sum()),
        "nan": int(np.isnan(values).sum()),
        "inf": int(np.isinf(values).sum()),
    }
