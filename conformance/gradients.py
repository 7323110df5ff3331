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
from .runner import call_api, declared, fed_arguments, feed_axis, prepare, to_native, weights_for

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


def run_gradient_check(check: GradientCheck) -> Record:
    record = check.record()
    with isolation.checked(record):
        _run(check, record)
    return record


def _run(check: GradientCheck, record: Record) -> None:
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
    context = b.call_context(fw, check.dtype, check.device) if b.call_context else contextlib.nullcontext()
    with context, warnings.catch_warnings(record=True) as caught:  # an API's exception or hang: isolation.checked
        warnings.simplefilter("always")
        native, native_w = to_native(b, fw, check, fed, axis, weights)
        fn = _differentiated(check, fw, weights, native_w)
        observed, read = call_api(
            b,
            fw,
            lambda: b.gradient(fw, fn, native, index),
            native,
            conv.arguments,
            check.dtype,
            api.keeps_dtype,
            mutation=False,
        )
    record.warnings = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
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


def _sum_to(grad: oracle.Gradient, shape: tuple) -> oracle.Gradient:
    return grad.summed_to(shape)


def _classes(values: np.ndarray) -> dict[str, int]:
    """How many gradient elements came out finite, NaN or infinite."""
    return {
        "finite": int(np.isfinite(values).sum()),
        "nan": int(np.isnan(values).sum()),
        "inf": int(np.isinf(values).sum()),
    }
