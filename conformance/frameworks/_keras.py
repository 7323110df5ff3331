"""Keras 3 on a backend other than the one this process runs: the calls happen in a child process.

Keras fixes its backend (`KERAS_BACKEND`) when it is first imported, once per process, and the
TensorFlow binding already imports Keras on TensorFlow. So the `keras_jax` and `keras_torch`
frameworks run every Keras call in one long-lived child process per backend, started with
`KERAS_BACKEND` set and fed NumPy arrays over a pipe. This works the same under pytest-xdist
(each worker that runs such checks owns its child) and without it, and needs no grouping of
checks by process; the cost is one child start per worker (its imports) and a pipe round trip
per call.

In the parent, a binding's arrays are `Remote` carriers (the fed bits as float64, with dtype and
device) and an API call returns a `Pending` description; the child runs it when the parent reads
the value (`to_numpy`) or asks for a gradient, so both happen inside the parent's time limit.
In the child, arrays are converted, placed, differentiated and read back by the backend's own
klconf binding (conformance/frameworks/jax.py or torch.py), so a Keras check feeds exactly the
bits a direct JAX or PyTorch check feeds. A child that dies or overruns is replaced on the next
call; the call in flight becomes an error with the child's last words.

This module is the parent's side and the protocol both sides share (the messages and the pipe); the
child, `python -m conformance.frameworks._keras_child BACKEND`, is `_keras_child.py`.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, BinaryIO

import numpy as np

from . import Api, Binding, Snippet, Unavailable, grid

KERAS_EPSILON = 1e-7  # keras.config.epsilon(): both arguments are clipped to [epsilon, 1]


@dataclass(frozen=True)
class Remote:
    """A fed argument in the parent: its float64 carrier values, the dtype and the device it is to have."""

    values: np.ndarray
    dtype: str
    device: str


@dataclass(frozen=True)
class Pending:
    """An API call described in the parent and run in the child."""

    api: str  # a key of _keras_child.CALLS
    options: dict
    args: tuple[Remote, Remote]
    weights: Remote | None


@dataclass(frozen=True)
class Computed:
    """A value computed in the child: float64 values and the dtype the backend returned."""

    values: np.ndarray
    dtype: str


class RemoteError(Exception):
    """An exception raised in the child; its message starts with the child's exception type."""


# --------------------------------------------------------------------------- the API entries (parent side)


def clip_epsilon(backend: str) -> float:
    """The clip bound as the backend applies it. On PyTorch, keras/src/backend/torch/numpy.py `clip` converts
    its bounds with convert_to_tensor, which makes the Python float 1e-7 a float32 (floatx) tensor, and
    torch.clip then promotes that float32 value: float64 inputs are clipped at float32(1e-7) =
    1.0000000116860974e-07, which moves log(epsilon) by 1.2e-8 relative. JAX and TensorFlow keep 1e-7
    (a weakly typed Python float, rounded to the input's dtype)."""
    return float(np.float32(KERAS_EPSILON)) if backend == "torch" else KERAS_EPSILON


def keras_convention(reduction: str, backend: str):
    """Keras 3's KL convention on `backend` (tensorflow, jax or torch): one declaration for every backend."""
    from ..conventions import Convention

    return Convention(
        arguments=("y_true", "y_pred"),
        p_argument="y_true",
        input_space=("prob", "prob"),
        reduction=reduction,
        class_axis=-1,
        batch_divisor="rows",
        clip_epsilon=clip_epsilon(backend),
    )


# keras/src/losses/loss.py, reduce_values: "sum_over_batch_size" and "mean" divide the summed
# per-sample losses by their count (N, or N*T for 3-D input); "mean_with_sample_weight" by the sum
# of the weights (by the count without them); None/"none" returns one loss per sample. Weights
# multiply the per-sample losses first.
REDUCTION = {
    "sum_over_batch_size": "mean_batch",
    "sum": "sum",
    None: "per_row",
    "none": "per_row",
    "mean": "mean_batch",
    "mean_with_sample_weight": "mean_weighted",
}
_WEIGHTS = (None, "per_row")


def apis(backend: str) -> list[Api]:
    """The Keras KL APIs as the family `keras_<backend>`: the names carry the backend in brackets."""
    from ..conventions import Convention

    framework = f"keras_{backend}"

    def call(key: str):
        return lambda fw, a, b, o, w: Pending(key, dict(o), (a, b), w)

    return [
        Api(
            name=f"keras.losses.KLDivergence[{backend}]",
            framework=framework,
            call=call("losses.KLDivergence"),
            convention=lambda o: keras_convention(REDUCTION[o["reduction"]], backend),
            options=grid(
                reduction=("sum_over_batch_size", "sum", None, "mean", "mean_with_sample_weight"),
                sample_weight=_WEIGHTS,
            ),
            differentiable=("y_true", "y_pred"),
            snippet="keras.losses.KLDivergence(reduction={o[reduction]!r}, dtype={dtype!r})"
            "({a}, {b}, sample_weight={w})",
            notes=f"Keras 3 on the {backend} backend. Probabilities in (y_true=P, y_pred=Q) order; both clipped to "
            "[1e-7, 1].",
            doc_url="https://keras.io/api/losses/probabilistic_losses/#kldivergence-class",
        ),
        Api(
            name=f"keras.losses.kl_divergence[{backend}]",
            framework=framework,
            call=call("losses.kl_divergence"),
            convention=lambda o: keras_convention("per_row", backend),
            differentiable=("y_true", "y_pred"),
            snippet="keras.losses.kl_divergence({a}, {b})",
            notes=f"Keras 3 on the {backend} backend.",
            doc_url="https://keras.io/api/losses/probabilistic_losses/#kl_divergence-function",
        ),
        Api(
            name=f"keras.metrics.KLDivergence[{backend}]",
            framework=framework,
            call=call("metrics.KLDivergence"),
            # keras/src/metrics/reduction_metrics.py: the mean over rows, or the weighted mean
            convention=lambda o: keras_convention("mean_weighted" if o["sample_weight"] else "mean_batch", backend),
            options=grid(sample_weight=_WEIGHTS),
            snippet="metric = keras.metrics.KLDivergence(dtype={dtype!r})\n"
            "metric.update_state({a}, {b}, sample_weight={w})\nmetric.result()",
            notes=f"Keras 3 on the {backend} backend.",
            doc_url="https://keras.io/api/metrics/probabilistic_metrics/#kldivergence-class",
        ),
        Api(
            name=f"keras.losses.categorical_crossentropy-entropy[{backend}]",
            framework=framework,
            call=call("losses.categorical_crossentropy-entropy"),
            snippet="p = {a}\nentropy = -keras.ops.sum(keras.ops.where(p == 0, 0, p * keras.ops.log("
            "keras.ops.where(p == 0, 1, p))), axis=-1)\n"
            "keras.losses.categorical_crossentropy(p, {b}, from_logits=True) - entropy",
            convention=lambda o: Convention(
                arguments=("y_true", "y_pred"),
                p_argument="y_true",
                input_space=("prob", "logits"),
                reduction="per_row",
                class_axis=-1,
            ),
            differentiable=("y_pred",),
            identity="cross_entropy",
            broadcasts=False,
            notes=f"Keras 3 on the {backend} backend: categorical_crossentropy(p, logits_q, from_logits=True) "
            "minus the entropy of p.",
            doc_url="https://keras.io/api/losses/probabilistic_losses/#categorical_crossentropy-function",
        ),
    ]


def binding(backend: str, snippet: Snippet, check_settings=None) -> Binding:
    """The parent's binding of `keras_<backend>`: arrays stay NumPy carriers, calls go to the child."""
    name = f"keras_{backend}"

    def to_native(fw, values: np.ndarray, dtype: str, device: str) -> Remote:
        if device not in fw.info["devices"]:
            raise Unavailable(f"Keras on {backend} sees no {device} device")
        return Remote(np.array(values, dtype=np.float64), dtype, device)

    def to_numpy(fw, out):
        if isinstance(out, Remote):  # a fed argument read back (klconf checks inputs for mutation)
            return out.values, out.dtype
        if isinstance(out, Pending):
            out = fw.child.request("value", out)
        if not isinstance(out, Computed):
            raise TypeError(f"output is a {type(out).__name__}, not a Keras call")
        return out.values, out.dtype

    def gradient(fw, fn, args, index):
        return fw.child.request("gradient", _pending(fn(*args)), index)

    def gradients(fw, fn, args, indices):
        return fw.child.request("gradients", _pending(fn(*args)), tuple(indices))

    def _pending(call):
        if not isinstance(call, Pending):
            raise TypeError(f"{name} differentiates Keras calls only, not {type(call).__name__}")
        return call

    def load():
        child = Child(backend)
        return SimpleNamespace(child=child, info=child.start())

    return Binding(
        name=name,
        modules=("keras", backend),
        load=load,
        version=lambda fw: fw.info["versions"],
        devices=lambda fw: fw.info["devices"],
        to_native=to_native,
        to_numpy=to_numpy,
        settings=lambda fw: fw.info["settings"],
        gradient=gradient,
        gradients=gradients,
        snippet=snippet,
        check_settings=check_settings or (lambda fw, dtype, device: {}),
    )


# --------------------------------------------------------------------------- the pipe


def send_message(stream: BinaryIO, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def receive_message(stream: BinaryIO) -> Any:
    header = stream.read(8)
    if len(header) < 8:
        raise EOFError("the pipe closed")
    (size,) = struct.unpack("<Q", header)
    return pickle.loads(stream.read(size))


class Child:
    """The parent's handle on one backend's child process, restarted when it dies or is abandoned."""

    def __init__(self, backend: str):
        self.backend = backend
        self.process: subprocess.Popen | None = None
        self.log = tempfile.TemporaryFile()  # the child's stderr, open for the child's lifetime

    def start(self) -> dict:
        env = {
            **os.environ,
            "KERAS_BACKEND": self.backend,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"{__package__}._keras_child", self.backend],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
        )
        status, info = self._exchange(None)
        if status != "ready":
            self.stop()
            raise Unavailable(f"Keras on {self.backend} failed to start: {info}")
        return info

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self._reap()

    def _reap(self) -> int:
        assert self.process is not None and self.process.stdin and self.process.stdout
        code = self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:  # a pipe whose reader is gone cannot flush: nothing is lost
                pass
        self.process = None
        return code

    def request(self, kind: str, call: Pending, index: int | tuple[int, ...] | None = None) -> Any:
        """The child's answer to one call: a `Computed` (a value, or the gradient for one index) or a tuple of
        them ("gradients", one per index)."""
        if self.process is None or self.process.poll() is not None:
            self.start()
        status, payload = self._exchange((kind, call, index))
        if status == "error":
            raise RemoteError(payload)
        return payload

    def _exchange(self, message):
        assert self.process is not None and self.process.stdin and self.process.stdout
        try:
            if message is not None:
                send_message(self.process.stdin, message)
            return receive_message(self.process.stdout)
        except (EOFError, BrokenPipeError) as exc:
            code = self._reap()
            raise RuntimeError(
                f"the Keras {self.backend} process died (exit code {code}): {self._last_words()}"
            ) from exc
        except BaseException:  # a time limit or an interrupt mid-call: the child's state is unknown
            self.stop()
            raise

    def _last_words(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-1500:].strip() or "(nothing on stderr)"

    def __del__(self):
        self.stop()
        self.log.close()
