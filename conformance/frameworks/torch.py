"""PyTorch's KL entry points (the only module that imports torch)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from ..conventions import Convention
from ..porting.vocabulary import Vocabulary
from . import Api, Binding, Snippet, Unavailable, grid

ORDER = 10  # place in reports


def _load():
    import torch
    import torch.nn.functional

    return SimpleNamespace(torch=torch, F=torch.nn.functional)


def _devices(fw) -> list[str]:
    return ["cpu"] + (["cuda"] if fw.torch.cuda.is_available() else [])


def _to_native(fw, values: np.ndarray, dtype: str, device: str):
    if device == "cuda" and not fw.torch.cuda.is_available():
        raise Unavailable("torch sees no CUDA device")
    carrier = fw.torch.from_numpy(np.array(values, order="C", copy=True))  # never a view of klconf's fed arrays
    return carrier.to(device=device, dtype=getattr(fw.torch, dtype))


def _to_numpy(fw, out):
    if not isinstance(out, fw.torch.Tensor):
        raise TypeError(f"output is a {type(out).__name__}, not a torch.Tensor")
    dtype = str(out.dtype).removeprefix("torch.")
    return out.detach().to(device="cpu", dtype=fw.torch.float64).numpy(), dtype


def _settings(fw) -> dict:
    t = fw.torch
    settings = {
        "torch.get_num_threads": t.get_num_threads(),
        "torch.backends.cuda.matmul.allow_tf32": t.backends.cuda.matmul.allow_tf32,
        "torch.backends.cudnn.allow_tf32": t.backends.cudnn.allow_tf32,
        "torch.get_float32_matmul_precision": t.get_float32_matmul_precision(),
        "torch.are_deterministic_algorithms_enabled": t.are_deterministic_algorithms_enabled(),
    }
    if t.cuda.is_available():
        settings["cuda.device"] = t.cuda.get_device_name(0)
        settings["cuda.version"] = t.version.cuda
    return settings


# Settings a call could change that later checks depend on: (name, read, write); read-only ones have no write.
_STATE = (
    ("torch.get_default_dtype", lambda t: t.get_default_dtype(), lambda t, v: t.set_default_dtype(v)),
    ("torch.set_default_device", lambda t: _default_device(t), lambda t, v: t.set_default_device(v)),
    ("torch.get_num_threads", lambda t: t.get_num_threads(), lambda t, v: t.set_num_threads(v)),
    ("torch.get_num_interop_threads", lambda t: t.get_num_interop_threads(), None),
    ("torch.is_grad_enabled", lambda t: t.is_grad_enabled(), lambda t, v: t.set_grad_enabled(v)),
    ("torch.is_anomaly_enabled", lambda t: t.is_anomaly_enabled(), lambda t, v: t.set_anomaly_enabled(v)),
    (
        "torch.are_deterministic_algorithms_enabled",
        lambda t: (t.are_deterministic_algorithms_enabled(), t.is_deterministic_algorithms_warn_only_enabled()),
        lambda t, v: t.use_deterministic_algorithms(v[0], warn_only=v[1]),
    ),
    (
        "torch.get_float32_matmul_precision",
        lambda t: t.get_float32_matmul_precision(),
        lambda t, v: t.set_float32_matmul_precision(v),
    ),
    (
        "torch.backends.cuda.matmul.allow_tf32",
        lambda t: t.backends.cuda.matmul.allow_tf32,
        lambda t, v: setattr(t.backends.cuda.matmul, "allow_tf32", v),
    ),
    (
        "torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction",
        lambda t: t.backends.cuda.matmul.allow_fp16_reduced_precision_reduction,
        lambda t, v: setattr(t.backends.cuda.matmul, "allow_fp16_reduced_precision_reduction", v),
    ),
    (
        "torch.backends.cudnn.allow_tf32",
        lambda t: t.backends.cudnn.allow_tf32,
        lambda t, v: setattr(t.backends.cudnn, "allow_tf32", v),
    ),
    (
        "torch.backends.cudnn.deterministic",
        lambda t: t.backends.cudnn.deterministic,
        lambda t, v: setattr(t.backends.cudnn, "deterministic", v),
    ),
    (
        "torch.backends.cudnn.benchmark",
        lambda t: t.backends.cudnn.benchmark,
        lambda t, v: setattr(t.backends.cudnn, "benchmark", v),
    ),
)


def _default_device(t) -> str | None:
    """What torch.set_default_device last set (None: never set); get_default_device() costs a tensor per read."""
    context = getattr(getattr(t, "_GLOBAL_DEVICE_CONTEXT", None), "device_context", None)
    return None if context is None else str(context.device)


def _state(fw) -> dict:
    out = {}
    for name, read, _ in _STATE:
        try:
            out[name] = read(fw.torch)
        except (AttributeError, RuntimeError):  # a setting this release does not have
            pass
    return out


def _restore(fw, changed: dict) -> None:
    writers = {name: write for name, _, write in _STATE}
    for name, value in changed.items():
        write = writers.get(name)
        if write is None:
            raise RuntimeError(f"{name} cannot be set back once the process has started")
        write(fw.torch, value)


def _shares_memory(fw, out, x) -> bool:
    t = fw.torch
    if not (isinstance(out, t.Tensor) and isinstance(x, t.Tensor)) or out.device != x.device:
        return False
    a, b = out.untyped_storage(), x.untyped_storage()
    return a.nbytes() > 0 and b.nbytes() > 0 and a.data_ptr() == b.data_ptr()


def _gradients(fw, fn, args, indices):
    args = [a.detach().clone().requires_grad_(i in indices) for i, a in enumerate(args)]
    return tuple(fw.torch.autograd.grad(fn(*args).sum(), [args[i] for i in indices]))


def _gradient(fw, fn, args, index):
    return _gradients(fw, fn, args, (index,))[0]


SNIPPET = Snippet(  # mirrors _to_native and _to_numpy
    imports="import torch",
    native=lambda values, dtype, device: f"torch.from_numpy({values}).to(device={device!r}, dtype=torch.{dtype})",
    to_numpy="{result}.detach().to(device='cpu', dtype=torch.float64).numpy()",
)

BINDING = Binding(
    name="torch",
    modules=("torch",),
    load=_load,
    version=lambda fw: {"torch": fw.torch.__version__},
    devices=_devices,
    to_native=_to_native,
    to_numpy=_to_numpy,
    settings=_settings,
    gradient=_gradient,
    gradients=_gradients,
    snippet=SNIPPET,
    state=_state,
    restore=_restore,
    shares_memory=_shares_memory,
)

# F.kl_div: input = log Q, target = P (or log P with log_target); no class sum; 'mean' divides by
# every element, 'batchmean' by input.size(0) (torch/nn/functional.py, kl_div).
_KL_DIV_REDUCTION = {"mean": "mean_all", "none": "none", "sum": "sum", "batchmean": "mean_batch"}


def _kl_div_convention(o: dict) -> Convention:
    return Convention(
        arguments=("input", "target"),
        p_argument="target",
        input_space=("log_prob", "log_prob" if o["log_target"] else "prob"),
        reduction=_KL_DIV_REDUCTION[o["reduction"]],
        class_axis=None,
        batch_divisor="dim0",
    )


_KL_DIV_OPTIONS = grid(reduction=("mean", "none", "sum", "batchmean"), log_target=(False, True))


def _cross_entropy_minus_entropy(fw, logits, target, o, w):
    """H(P, Q) - H(P): the identity users reach for; classes on dim 1 (dim 0 when unbatched)."""
    class_dim = 1 if logits.dim() > 1 else 0
    cross = fw.F.cross_entropy(logits, target, reduction=o["reduction"])
    entropy = fw.torch.special.entr(target).sum(class_dim)
    if o["reduction"] == "mean":
        entropy = entropy.mean()
    elif o["reduction"] == "sum":
        entropy = entropy.sum()
    return cross - entropy


_CE_REDUCTION = {"mean": "mean_batch", "none": "per_row", "sum": "sum"}


def _cross_entropy_snippet(o: dict) -> str:
    entropy = {"mean": "entropy.mean()", "sum": "entropy.sum()", "none": "entropy"}[o["reduction"]]
    return (
        "entropy = torch.special.entr({b}).sum(1 if {a}.dim() > 1 else 0)\n"
        "torch.nn.functional.cross_entropy({a}, {b}, reduction={o[reduction]!r}) - " + entropy
    )


APIS = [
    Api(
        name="torch.nn.functional.kl_div",
        framework="torch",
        call=lambda fw, a, b, o, w: fw.F.kl_div(a, b, reduction=o["reduction"], log_target=o["log_target"]),
        convention=_kl_div_convention,
        options=_KL_DIV_OPTIONS,
        snippet="torch.nn.functional.kl_div({a}, {b}, reduction={o[reduction]!r}, log_target={o[log_target]!r})",
        differentiable=("input", "target"),
        doc_url="https://pytorch.org/docs/stable/generated/torch.nn.functional.kl_div.html",
    ),
    Api(
        name="torch.nn.KLDivLoss",
        framework="torch",
        call=lambda fw, a, b, o, w: fw.torch.nn.KLDivLoss(reduction=o["reduction"], log_target=o["log_target"])(a, b),
        convention=_kl_div_convention,
        options=_KL_DIV_OPTIONS,
        snippet="torch.nn.KLDivLoss(reduction={o[reduction]!r}, log_target={o[log_target]!r})({a}, {b})",
        differentiable=("input", "target"),
        doc_url="https://pytorch.org/docs/stable/generated/torch.nn.KLDivLoss.html",
    ),
    Api(
        name="torch.nn.functional.cross_entropy-entropy",
        framework="torch",
        call=_cross_entropy_minus_entropy,
        snippet=_cross_entropy_snippet,
        convention=lambda o: Convention(
            arguments=("input", "target"),
            p_argument="target",
            input_space=("logits", "prob"),
            reduction=_CE_REDUCTION[o["reduction"]],
            class_axis=1,
            batch_divisor="rows",
        ),
        options=grid(reduction=("mean", "none", "sum")),
        differentiable=("input",),
        broadcasts=False,  # "Expected input batch_size (2) to match target batch_size (1)"
        identity="cross_entropy",
        notes="F.cross_entropy(logits_q, p) minus torch.special.entr(p) summed over classes: "
        "cross-entropy with probability targets equals KL(P||Q) + H(P).",
        doc_url="https://pytorch.org/docs/stable/generated/torch.nn.functional.cross_entropy.html",
    ),
]

# How a ported equivalent is written in this framework (conformance/porting/vocabulary.py)
VOCABULARY = Vocabulary(
    framework="torch",
    imports=("import torch",),
    native="torch.from_numpy(np.array({x}))",
    to_numpy="{x}.numpy()",
    scope="",
    log="torch.log({x})",
    xlogy="torch.special.xlogy({x}, {y})",
    where="torch.where({c}, {a}, {b})",
    constant="{value}",
    clip="torch.clamp({x}, {lo}, {hi})",
    sum="torch.sum({x}, dim={axis})",
    sum_keep="torch.sum({x}, dim={axis}, keepdim=True)",
    total="torch.sum({x})",
)
