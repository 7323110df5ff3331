"""The Keras child process: one backend's Keras, serving the parent's calls over a pipe (see `_keras.py`).

Started by `_keras.Child` as `python -m conformance.frameworks._keras_child BACKEND` with `KERAS_BACKEND`
set, it imports Keras and the backend's own klconf binding, says it is ready (versions, devices,
settings), then runs each `Pending` call it is sent: the value, or the gradient of its sum with respect
to one argument (or to two, from one backward pass: `Binding.gradients`), converted and read back by that
binding, so a Keras check feeds exactly the bits a direct JAX or PyTorch check feeds. What the call raises
goes back as text, with the end of its traceback. The messages are `_keras`'s classes, imported from there,
so they unpickle as the same classes in the parent.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

from . import Binding
from ._keras import Computed, Pending, receive_message, send_message


def _dtype(keras, x) -> str:
    return keras.backend.standardize_dtype(x.dtype)


def _loss(keras, p, q, o, w):
    loss = keras.losses.KLDivergence(reduction=o["reduction"], dtype=_dtype(keras, p))
    return loss(p, q, sample_weight=w if o["sample_weight"] else None)


def _metric(keras, p, q, o, w):
    metric = keras.metrics.KLDivergence(dtype=_dtype(keras, p))
    metric.update_state(p, q, sample_weight=w if o["sample_weight"] else None)
    return metric.result()


def _cross_entropy_minus_entropy(keras, p, logits, o, w):
    ops = keras.ops  # the entropy as TensorFlow's -xlogy(p, p): 0 at p = 0, NaN for p < 0 (Keras has no xlogy)
    entropy = -ops.sum(ops.where(p == 0, 0, p * ops.log(ops.where(p == 0, 1, p))), axis=-1)
    return keras.losses.categorical_crossentropy(p, logits, from_logits=True) - entropy


CALLS = {
    "losses.KLDivergence": _loss,
    "losses.kl_divergence": lambda keras, p, q, o, w: keras.losses.kl_divergence(p, q),
    "metrics.KLDivergence": _metric,
    "losses.categorical_crossentropy-entropy": _cross_entropy_minus_entropy,
}


def _serve(backend: str) -> None:
    requests, replies = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever Keras or the backend prints goes to stderr, never into the pipe
    try:
        import keras

        bind = importlib.import_module(f"{__package__}.{backend}").BINDING
        fw = bind.handle()
        versions = {"keras": keras.__version__, **bind.version(fw)}
        settings = {
            "keras.backend": keras.backend.backend(),
            "keras.config.epsilon": keras.config.epsilon(),
            "keras.config.floatx": keras.config.floatx(),
            **bind.settings(fw),
        }
        send_message(replies, ("ready", {"versions": versions, "devices": bind.devices(fw), "settings": settings}))
    except Exception as exc:  # any failure to start is the parent's skip reason
        send_message(replies, ("failed", f"{type(exc).__name__}: {exc}"))
        return
    while True:
        try:
            kind, call, index = receive_message(requests)
        except EOFError:
            return
        try:
            send_message(replies, ("ok", _run(keras, bind, fw, kind, call, index)))
        except Exception as exc:  # whatever the call raises goes back to the parent's record
            text = "".join(traceback.format_exception(exc, limit=-3))[-2000:]
            send_message(replies, ("error", f"{type(exc).__name__}: {exc}\n(in the Keras {backend} process)\n{text}"))


def _run(
    keras, bind: Binding, fw, kind: str, call: Pending, index: int | tuple[int, ...] | None
) -> Computed | tuple[Computed, ...]:
    first = call.args[0]
    context = bind.call_context(fw, first.dtype, first.device) if bind.call_context else None
    with context or contextlib.nullcontext(), keras.device("cpu:0" if first.device == "cpu" else "gpu:0"):
        native = [bind.to_native(fw, a.values, a.dtype, a.device) for a in call.args]
        w = call.weights
        weights = bind.to_native(fw, w.values, w.dtype, w.device) if w is not None else None

        def fn(x, y):
            return CALLS[call.api](keras, x, y, call.options, weights)

        if kind == "value":
            return Computed(*bind.to_numpy(fw, fn(*native)))
        # the parent asks for gradients only through its binding: Binding.gradient passes the argument's index,
        # Binding.gradients a tuple of indices and takes a tuple of gradients in their order
        several = kind == "gradients"
        differentiate: Callable[..., Any] | None = bind.gradients if several else bind.gradient
        assert differentiate is not None and isinstance(index, tuple if several else int), (
            f"{bind.name}: {kind} need the binding's autodiff and the argument's index or indices"
        )
        out = _eager_jax_gradient(fw, fn, native, index) if bind.name == "jax" else differentiate(fw, fn, native, index)
        if several:
            return tuple(Computed(*bind.to_numpy(fw, o)) for o in out)
        values, dtype = bind.to_numpy(fw, out)
    return Computed(values, dtype)


def _eager_jax_gradient(fw, fn, args, index):
    """Keras on JAX is differentiated eagerly, as Keras on TensorFlow is (GradientTape) and as its expectations
    were measured, not through the jax family's jax.jit: jitted, Keras' float16 losses change their gradients
    (XLA fuses the clip, divide and log), e.g. NaN in 10 of wide-3x1000's d/dy_true elements and in 1 of
    canonical-2x3's, where eager JAX gives finite values.

    Eager differentiation re-traces the loss at every request, and the jitted functions Keras and jax.numpy call
    inside it are lowered again each time (their jaxprs are new objects, so JAX's lowering cache cannot hit;
    the persistent cache then spares only the compile). Measured with JAX 0.10.2 on the corpus's Keras-on-JAX
    value and gradient checks (4,307): 2,493 lowerings, none a lowering-cache hit, in 66.8 s; with a
    1,000,000-entry jit dispatch cache in place of JAX's 8,192, 2,456 lowerings in 66.8 s."""

    def total(*inputs):
        return fn(*inputs).sum()

    return fw.jax.grad(total, argnums=index)(*args)  # (a tuple of indices: a tuple of gradients, one trace)


if __name__ == "__main__":
    _serve(sys.argv[1])
