"""PaddlePaddle's KL entry points (the only module that imports paddle).

`paddle.nn.functional.kl_div` and `paddle.nn.KLDivLoss` follow PyTorch's signature (log-probability
input, probability or log-probability label, four reductions); `paddle.distribution.kl_divergence`
is the distribution-level KL, served through `distribution_libraries`.

Importing paddle (3.3.1) in a process that has already imported tensorflow (2.21) kills the process
with a segmentation fault (the other order works), so the binding refuses that order with a reason:
a skip, not a crashed worker. Paddle therefore runs on its own (`--framework paddle`, `tox -e paddle`)
and is not part of the `all` extra.
"""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import numpy as np

from ..conventions import Convention
from ..porting.vocabulary import Vocabulary
from . import Api, Binding, Snippet, Unavailable, grid

ORDER = 50  # place in reports


def _load():
    import sys

    if "tensorflow" in sys.modules:  # measured: paddle 3.3.1 after tensorflow 2.21 in one process segfaults
        raise Unavailable(
            "paddle cannot be imported after tensorflow in one process (it crashes); "
            "run paddle's checks on their own: klconf run --framework paddle, or tox -e paddle"
        )
    import paddle
    import paddle.nn.functional

    return SimpleNamespace(paddle=paddle, F=paddle.nn.functional)


def _has_cuda(fw) -> bool:
    return bool(fw.paddle.device.is_compiled_with_cuda() and fw.paddle.device.cuda.device_count() > 0)


def _place(fw, device: str):
    if device == "cpu":
        return fw.paddle.CPUPlace()
    if not _has_cuda(fw):
        raise Unavailable("paddle sees no CUDA device")
    return fw.paddle.CUDAPlace(0)


def _to_native(fw, values: np.ndarray, dtype: str, device: str):
    carrier = fw.paddle.to_tensor(np.ascontiguousarray(values), place=_place(fw, device))
    return carrier.astype(dtype)


def _to_numpy(fw, out):
    if not isinstance(out, fw.paddle.Tensor):
        raise TypeError(f"output is a {type(out).__name__}, not a paddle.Tensor")
    return out.astype("float64").numpy(), str(out.dtype).removeprefix("paddle.")


@contextlib.contextmanager
def _on_device(fw, dtype: str, device: str):
    """Paddle runs an op on its global device, not on its inputs' place: set it for the call, then restore it."""
    previous = fw.paddle.get_device()
    fw.paddle.set_device("cpu" if device == "cpu" else "gpu:0")
    try:
        yield
    finally:
        fw.paddle.set_device(previous)


def _gradient(fw, fn, args, index):
    args = [a.detach() for a in args]
    args[index].stop_gradient = False
    (grad,) = fw.paddle.grad(fn(*args).sum(), [args[index]])
    return grad


def _settings(fw) -> dict:
    return {
        "paddle.get_device": fw.paddle.get_device(),
        "paddle.is_compiled_with_cuda": bool(fw.paddle.device.is_compiled_with_cuda()),
    }


BINDING = Binding(
    name="paddle",
    modules=("paddle",),
    load=_load,
    version=lambda fw: {"paddle": fw.paddle.__version__},
    devices=lambda fw: ["cpu"] + (["cuda"] if _has_cuda(fw) else []),
    to_native=_to_native,
    to_numpy=_to_numpy,
    settings=_settings,
    call_context=_on_device,
    gradient=_gradient,
    snippet=Snippet(  # mirrors _to_native, _to_numpy and _on_device
        imports="import paddle",
        native=lambda values, dtype, device: f"paddle.to_tensor({values}).astype({dtype!r})",
        to_numpy="{result}.astype('float64').numpy()",
        prelude=lambda dtype, device: f"paddle.set_device({'cpu' if device == 'cpu' else 'gpu:0'!r})",
    ),
)

# paddle/nn/functional/loss.py, kl_div: _C_ops.kldiv_loss(input, label, 'none', log_target) per element
# (label * (log label - input), 0 where label <= 0; exp(label) * (label - input) with log_target), then
# 'mean' = paddle.mean (every element), 'sum', 'batchmean' = sum / input.shape[0], 'none'.
_KL_DIV_REDUCTION = {"mean": "mean_all", "none": "none", "sum": "sum", "batchmean": "mean_batch"}


def _kl_div_convention(o: dict) -> Convention:
    return Convention(
        arguments=("input", "label"),
        p_argument="label",
        input_space=("log_prob", "log_prob" if o["log_target"] else "prob"),
        reduction=_KL_DIV_REDUCTION[o["reduction"]],
        class_axis=None,
        batch_divisor="dim0",
    )


_KL_DIV_OPTIONS = grid(reduction=("mean", "none", "sum", "batchmean"), log_target=(False, True))
_DTYPES = ("float32", "float64")  # the CPU kernel kldiv_loss is registered for these two only
_NOTES = (
    "The label gets no gradient: kldiv_loss has no backward for it (paddle.grad reports that it "
    "'does not appear in the backward graph'). On CPU the kernel takes float32 and float64 only."
)

APIS = [
    Api(
        name="paddle.nn.functional.kl_div",
        framework="paddle",
        call=lambda fw, a, b, o, w: fw.F.kl_div(a, b, reduction=o["reduction"], log_target=o["log_target"]),
        convention=_kl_div_convention,
        options=_KL_DIV_OPTIONS,
        dtypes=_DTYPES,
        snippet="paddle.nn.functional.kl_div({a}, {b}, reduction={o[reduction]!r}, log_target={o[log_target]!r})",
        differentiable=("input",),
        broadcasts=False,  # "Input(X) and Input(Target) should in same shape"
        notes=_NOTES,
        doc_url="https://www.paddlepaddle.org.cn/documentation/docs/en/api/paddle/nn/functional/kl_div_en.html",
    ),
    Api(
        name="paddle.nn.KLDivLoss",
        framework="paddle",
        call=lambda fw, a, b, o, w: fw.paddle.nn.KLDivLoss(reduction=o["reduction"], log_target=o["log_target"])(a, b),
        convention=_kl_div_convention,
        options=_KL_DIV_OPTIONS,
        dtypes=_DTYPES,
        snippet="paddle.nn.KLDivLoss(reduction={o[reduction]!r}, log_target={o[log_target]!r})({a}, {b})",
        differentiable=("input",),
        broadcasts=False,  # "Input(X) and Input(Target) should in same shape"
        notes=_NOTES,
        doc_url="https://www.paddlepaddle.org.cn/documentation/docs/en/api/paddle/nn/KLDivLoss_en.html",
    ),
]

# How a ported equivalent is written in this framework (conformance/porting/vocabulary.py)
VOCABULARY = Vocabulary(
    framework="paddle",
    imports=("import paddle",),
    native="paddle.to_tensor(np.array({x}))",
    to_numpy="{x}.numpy()",
    scope="",
    log="paddle.log({x})",
    xlogy="paddle.where({x} == 0, paddle.zeros_like({x}), {x} * paddle.log({y}))",
    where="paddle.where({c}, {a}, {b})",
    constant="paddle.full([], {value}, {like}.dtype)",
    clip="paddle.clip({x}, {lo}, {hi})",
    sum="paddle.sum({x}, axis={axis})",
    sum_keep="paddle.sum({x}, axis={axis}, keepdim=True)",
    total="paddle.sum({x})",
)


def distribution_libraries() -> list:
    from ._paddle_distributions import LIBRARY

    return [LIBRARY]
