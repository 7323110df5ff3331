"""MLX's KL entry point, `mlx.nn.losses.kl_div_loss` (the only module that imports mlx).

MLX evaluates lazily: a result is computed when it is read, so reading it (`to_numpy`) is part
of the guarded call. Its Linux wheels run on the CPU (mlx-cpu) or CUDA (mlx-cuda); float64 is a
CPU-only dtype.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from ..conventions import Convention
from ..porting.vocabulary import Vocabulary
from . import Api, Binding, Snippet, Unavailable, grid

ORDER = 60  # place in reports


def _load():
    import mlx.core as mx
    import mlx.nn

    return SimpleNamespace(mx=mx, nn=mlx.nn)


_CARRIER = {"float64": "float64", "float32": "float32", "float16": "float16", "bfloat16": "float32"}


def _has_cuda(fw) -> bool:
    return bool(fw.mx.cuda.is_available())


def _to_native(fw, values: np.ndarray, dtype: str, device: str):
    if device == "cuda" and not _has_cuda(fw):
        raise Unavailable("mlx sees no CUDA device")
    carrier = _CARRIER[dtype]  # mx.array(a float64 array) would round it to float32 unless told otherwise
    if not values.size:  # the same empty array, made by MLX: one made from an empty NumPy buffer can hang a sum
        return fw.mx.zeros(values.shape, dtype=getattr(fw.mx, dtype))
    return fw.mx.array(values.astype(carrier), dtype=getattr(fw.mx, carrier)).astype(getattr(fw.mx, dtype))


def _to_numpy(fw, out):
    if not isinstance(out, fw.mx.array):
        raise TypeError(f"output is a {type(out).__name__}, not an mlx.core.array")
    readable = out.astype(fw.mx.float32) if out.dtype == fw.mx.bfloat16 else out  # NumPy has no bfloat16
    return np.array(readable).astype(np.float64), str(out.dtype).removeprefix("mlx.core.")


def _gradient(fw, fn, args, index):
    def total(x):
        return fn(*(x if i == index else a for i, a in enumerate(args))).sum()

    return fw.mx.grad(total)(args[index])


BINDING = Binding(
    name="mlx",
    modules=("mlx",),
    load=_load,
    version=lambda fw: {"mlx": fw.mx.__version__},
    devices=lambda fw: ["cpu"] + (["cuda"] if _has_cuda(fw) else []),
    to_native=_to_native,
    to_numpy=_to_numpy,
    settings=lambda fw: {"mlx.default_device": str(fw.mx.default_device())},
    call_context=lambda fw, dtype, device: fw.mx.stream(fw.mx.cpu if device == "cpu" else fw.mx.gpu),
    gradient=_gradient,
    snippet=Snippet(  # mirrors _to_native, _to_numpy and the call context
        imports="import mlx.core as mx\nimport mlx.nn",
        native=lambda values, dtype, device: (
            f"(mx.array(np.asarray({values}, dtype=np.{_CARRIER[dtype]}), dtype=mx.{_CARRIER[dtype]}) "
            f"if np.size({values}) else mx.zeros(np.shape({values}))).astype(mx.{dtype})"
        ),
        to_numpy="np.array({result}.astype(mx.float32) if {result}.dtype == mx.bfloat16 else {result})"
        ".astype(np.float64)",
        context=lambda dtype, device: f"with mx.stream({'mx.cpu' if device == 'cpu' else 'mx.gpu'}):",
    ),
)

# mlx/nn/losses.py, kl_div_loss: mx.sum(mx.exp(targets) * (targets - inputs), axis), then _reduce:
# 'none' returns the per-row sums, 'mean' their mean (over every row), 'sum' their sum.
_REDUCTION = {"none": "per_row", "mean": "mean_batch", "sum": "sum"}

APIS = [
    Api(
        name="mlx.nn.losses.kl_div_loss",
        framework="mlx",
        call=lambda fw, log_q, log_p, o, w: fw.nn.losses.kl_div_loss(log_q, log_p, reduction=o["reduction"]),
        convention=lambda o: Convention(
            arguments=("inputs", "targets"),
            p_argument="targets",
            input_space=("log_prob", "log_prob"),
            reduction=_REDUCTION[o["reduction"]],
            class_axis=-1,
            batch_divisor="rows",
        ),
        options=grid(reduction=("none", "mean", "sum")),
        snippet="mlx.nn.losses.kl_div_loss({a}, {b}, reduction={o[reduction]!r})",
        differentiable=("inputs", "targets"),
        notes="Both arguments are log-probabilities (inputs = log Q, targets = log P); sums over axis -1.",
        doc_url="https://ml-explore.github.io/mlx/build/html/python/nn/_autosummary_functions/"
        "mlx.nn.losses.kl_div_loss.html",
    ),
]

# How a ported equivalent is written in this framework (conformance/porting/vocabulary.py)
VOCABULARY = Vocabulary(
    framework="mlx",
    imports=("import mlx.core as mx",),
    native="to_mlx({x})",
    helpers=(
        "def to_mlx(x):",
        '    """x as an MLX array (float64 stays float64). An empty array is made by MLX itself: MLX 0.32 can',
        '    hang summing an array made from an empty NumPy buffer (cases/expectations/mlx.yaml)."""',
        "    x = np.asarray(x)",
        "    dtype = mx.float64 if x.dtype == np.float64 else mx.float32",
        "    return mx.array(x, dtype=dtype) if x.size else mx.zeros(x.shape, dtype=dtype)",
    ),
    to_numpy="np.array({x})",
    scope="",
    log="mx.log({x})",
    xlogy="mx.where({x} == 0, mx.zeros_like({x}), {x} * mx.log({y}))",
    where="mx.where({c}, {a}, {b})",
    constant="mx.array({value}, dtype={like}.dtype)",
    clip="mx.clip({x}, {lo}, {hi})",
    sum="mx.sum({x}, axis={axis})",
    sum_keep="mx.sum({x}, axis={axis}, keepdims=True)",
    total="mx.sum({x})",
)
