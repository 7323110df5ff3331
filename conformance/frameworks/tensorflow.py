"""TensorFlow's KL entry points: Keras 3 as tf.keras (losses, function, metric) and the legacy
Keras 2 package tf_keras. The only module that imports TensorFlow or Keras.

Keras computes in the loss's `dtype` (floatx by default), so klconf passes the input dtype
explicitly: the check measures the dtype it names.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np

from ..conventions import Convention
from ..porting.vocabulary import Vocabulary
from . import Api, Binding, Snippet, Unavailable, grid
from ._keras import REDUCTION as KERAS3_REDUCTION
from ._keras import keras_convention

ORDER = 30  # place in reports


def _load():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # these adapters feed TensorFlow tensors
    import keras  # Keras 3, the package tf.keras resolves to since TensorFlow 2.16
    import tensorflow as tf

    try:
        import tf_keras
    except ImportError:
        tf_keras = None
    return SimpleNamespace(tf=tf, tfkeras=tf.keras, keras=keras, tf_keras=tf_keras)  # tfkeras: tf.keras (Keras 3)


def _device_name(fw, device: str) -> str:
    if device == "cpu":
        return "/CPU:0"
    if not fw.tf.config.list_physical_devices("GPU"):
        raise Unavailable("TensorFlow sees no GPU")
    return "/GPU:0"


def _to_native(fw, values: np.ndarray, dtype: str, device: str):
    with fw.tf.device(_device_name(fw, device)):
        return fw.tf.cast(fw.tf.constant(np.ascontiguousarray(values)), getattr(fw.tf, dtype))


def _to_numpy(fw, out):
    if not isinstance(out, (fw.tf.Tensor, fw.tf.Variable)):
        raise TypeError(f"output is a {type(out).__name__}, not a tf.Tensor")
    return fw.tf.cast(out, fw.tf.float64).numpy(), out.dtype.name


def _settings(fw) -> dict:
    return {
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "(unset: oneDNN on by default on x86)"),
        "tf.config.threading.intra_op": fw.tf.config.threading.get_intra_op_parallelism_threads(),
        "tf.config.threading.inter_op": fw.tf.config.threading.get_inter_op_parallelism_threads(),
        "tf.config.experimental.tensor_float_32": fw.tf.config.experimental.tensor_float_32_execution_enabled(),
        "keras.backend": fw.keras.backend.backend(),
        "keras.config.epsilon": fw.keras.config.epsilon(),
        "keras.config.floatx": fw.keras.config.floatx(),
    }


# Settings a call could change that later checks depend on: (name, read, write). Thread counts are fixed once
# TensorFlow has started (setting them raises), so a call cannot change them.
_STATE = (
    (
        "tf.config.experimental.tensor_float_32_execution_enabled",
        lambda fw: fw.tf.config.experimental.tensor_float_32_execution_enabled(),
        lambda fw, v: fw.tf.config.experimental.enable_tensor_float_32_execution(v),
    ),
    (
        "tf.config.soft_device_placement",
        lambda fw: fw.tf.config.get_soft_device_placement(),
        lambda fw, v: fw.tf.config.set_soft_device_placement(v),
    ),
    (
        "tf.config.functions_run_eagerly",
        lambda fw: fw.tf.config.functions_run_eagerly(),
        lambda fw, v: fw.tf.config.run_functions_eagerly(v),
    ),
    ("keras.config.floatx", lambda fw: fw.keras.config.floatx(), lambda fw, v: fw.keras.config.set_floatx(v)),
    ("keras.config.epsilon", lambda fw: fw.keras.config.epsilon(), lambda fw, v: fw.keras.config.set_epsilon(v)),
    (
        "keras.config.image_data_format",
        lambda fw: fw.keras.config.image_data_format(),
        lambda fw, v: fw.keras.config.set_image_data_format(v),
    ),
    (
        "keras.config.dtype_policy",
        lambda fw: fw.keras.config.dtype_policy().name,
        lambda fw, v: fw.keras.config.set_dtype_policy(v),
    ),
)


def _state(fw) -> dict:
    out = {}
    for name, read, _ in _STATE:
        try:
            out[name] = read(fw)
        except (AttributeError, RuntimeError, ValueError):  # a setting this release does not have
            pass
    return out


def _restore(fw, changed: dict) -> None:
    writers = {name: write for name, _, write in _STATE}
    for name, value in changed.items():
        writers[name](fw, value)


def _versions(fw) -> dict:
    versions = {"tensorflow": fw.tf.__version__, "keras": fw.keras.__version__}
    if fw.tf_keras is not None:
        versions["tf_keras"] = fw.tf_keras.__version__
    return versions


def _gradients(fw, fn, args, indices):
    with fw.tf.GradientTape() as tape:
        for i in indices:
            tape.watch(args[i])
        total = fw.tf.reduce_sum(fn(*args))
    grads = tape.gradient(total, [args[i] for i in indices])
    if any(grad is None for grad in grads):
        raise TypeError("the output does not depend differentiably on this argument (GradientTape returned None)")
    return tuple(grads)


def _gradient(fw, fn, args, index):
    return _gradients(fw, fn, args, (index,))[0]


SNIPPET = Snippet(  # mirrors _load, _to_native, _to_numpy and the call context
    imports='import os\nos.environ.setdefault("KERAS_BACKEND", "tensorflow")\nimport tensorflow as tf\nimport keras',
    native=lambda values, dtype, device: f"tf.cast(tf.constant({values}), tf.{dtype})",
    to_numpy="tf.cast({result}, tf.float64).numpy()",
    context=lambda dtype, device: f"with tf.device({'/CPU:0' if device == 'cpu' else '/GPU:0'!r}):",
)

BINDING = Binding(
    name="tensorflow",
    modules=("tensorflow",),
    load=_load,
    version=_versions,
    devices=lambda fw: ["cpu"] + (["cuda"] if fw.tf.config.list_physical_devices("GPU") else []),
    to_native=_to_native,
    to_numpy=_to_numpy,
    settings=_settings,
    call_context=lambda fw, dtype, device: fw.tf.device(_device_name(fw, device)),
    gradient=_gradient,
    gradients=_gradients,
    snippet=SNIPPET,
    state=_state,
    restore=_restore,
    mutable_inputs=False,
)


def _keras_convention(reduction: str) -> Convention:
    """Keras on TensorFlow: Keras 3's convention (`_keras.py` declares it for every backend)."""
    return keras_convention(reduction, "tensorflow")


def _dtype_of(fw, tensor) -> str:
    return tensor.dtype.name


def _keras3_loss(fw, p, q, o, w):
    loss = fw.tfkeras.losses.KLDivergence(reduction=o["reduction"], dtype=_dtype_of(fw, p))
    return loss(p, q, sample_weight=w if o["sample_weight"] else None)


def _keras3_metric(fw, p, q, o, w):
    metric = fw.tfkeras.metrics.KLDivergence(dtype=_dtype_of(fw, p))
    metric.update_state(p, q, sample_weight=w if o["sample_weight"] else None)
    return metric.result()


def _tf_keras_loss(fw, p, q, o, w):
    loss = fw.tf_keras.losses.KLDivergence(reduction=o["reduction"])
    return loss(p, q, sample_weight=w if o["sample_weight"] else None)


def _categorical_crossentropy_minus_entropy(fw, p, logits, o, w):
    cross = fw.keras.losses.categorical_crossentropy(p, logits, from_logits=True)
    return cross - fw.tf.reduce_sum(-fw.tf.math.xlogy(p, p), axis=-1)


_WEIGHTS = (None, "per_row")

APIS = [
    Api(
        name="tf.keras.losses.KLDivergence",
        framework="tensorflow",
        call=_keras3_loss,
        convention=lambda o: _keras_convention(KERAS3_REDUCTION[o["reduction"]]),
        options=grid(
            reduction=("sum_over_batch_size", "sum", None, "mean", "mean_with_sample_weight"), sample_weight=_WEIGHTS
        ),
        differentiable=("y_true", "y_pred"),
        snippet=(
            "tf.keras.losses.KLDivergence(reduction={o[reduction]!r}, dtype={dtype!r})({a}, {b}, sample_weight={w})"
        ),
        notes="Probabilities in (y_true=P, y_pred=Q) order; both clipped to [1e-7, 1].",
        doc_url="https://keras.io/api/losses/probabilistic_losses/#kldivergence-class",
    ),
    Api(
        name="keras.losses.kl_divergence",
        framework="tensorflow",
        call=lambda fw, p, q, o, w: fw.keras.losses.kl_divergence(p, q),
        snippet="keras.losses.kl_divergence({a}, {b})",
        convention=lambda o: _keras_convention("per_row"),
        differentiable=("y_true", "y_pred"),
        doc_url="https://keras.io/api/losses/probabilistic_losses/#kl_divergence-function",
    ),
    Api(
        name="tf.keras.metrics.KLDivergence",
        framework="tensorflow",
        call=_keras3_metric,
        # Mean metric (keras/src/metrics/reduction_metrics.py: reduce_to_samplewise_values averages
        # per-sample losses beyond axis 0, Mean.update_state divides by shape[0] or by the weights'
        # sum): the mean over all rows, or the weighted mean.
        convention=lambda o: _keras_convention("mean_weighted" if o["sample_weight"] else "mean_batch"),
        options=grid(sample_weight=_WEIGHTS),
        snippet="metric = tf.keras.metrics.KLDivergence(dtype={dtype!r})\n"
        "metric.update_state({a}, {b}, sample_weight={w})\nmetric.result()",
        doc_url="https://keras.io/api/metrics/probabilistic_metrics/#kldivergence-class",
    ),
    Api(
        name="keras.losses.categorical_crossentropy-entropy",
        framework="tensorflow",
        call=_categorical_crossentropy_minus_entropy,
        snippet="keras.losses.categorical_crossentropy({a}, {b}, from_logits=True) - "
        "tf.reduce_sum(-tf.math.xlogy({a}, {a}), axis=-1)",
        # from_logits=True goes to tf.nn.softmax_cross_entropy_with_logits: no clipping, no renormalising
        convention=lambda o: Convention(
            arguments=("y_true", "y_pred"),
            p_argument="y_true",
            input_space=("prob", "logits"),
            reduction="per_row",
            class_axis=-1,
        ),
        differentiable=("y_pred",),
        identity="cross_entropy",
        broadcasts=False,  # softmax_cross_entropy_with_logits wants labels and logits of one shape
        notes="keras.losses.categorical_crossentropy(p, logits_q, from_logits=True) minus the entropy of p.",
        doc_url="https://keras.io/api/losses/probabilistic_losses/#categorical_crossentropy-function",
    ),
    Api(
        name="tf_keras.losses.KLDivergence",
        framework="tensorflow",
        call=_tf_keras_loss,
        convention=lambda o: _keras_convention(
            {"auto": "mean_batch", "sum_over_batch_size": "mean_batch", "sum": "sum", "none": "per_row"}[o["reduction"]]
        ),
        options=grid(reduction=("auto", "sum_over_batch_size", "sum", "none"), sample_weight=_WEIGHTS),
        requires=("tf_keras",),
        differentiable=("y_true", "y_pred"),
        snippet=(
            "import tf_keras\ntf_keras.losses.KLDivergence(reduction={o[reduction]!r})({a}, {b}, sample_weight={w})"
        ),
        notes="Legacy Keras 2 (tf.keras in TensorFlow <= 2.15, or TF_USE_LEGACY_KERAS=1).",
        doc_url="https://www.tensorflow.org/api_docs/python/tf/keras/losses/KLDivergence",
    ),
]

# How a ported equivalent is written in this framework (conformance/porting/vocabulary.py)
VOCABULARY = Vocabulary(
    framework="tensorflow",
    imports=("import tensorflow as tf",),
    native="tf.constant({x})",
    to_numpy="{x}.numpy()",
    scope="",
    log="tf.math.log({x})",
    xlogy="tf.math.xlogy({x}, {y})",
    where="tf.where({c}, {a}, {b})",
    constant="tf.constant({value}, {like}.dtype)",
    clip="tf.clip_by_value({x}, {lo}, {hi})",
    sum="tf.reduce_sum({x}, axis={axis})",
    sum_keep="tf.reduce_sum({x}, axis={axis}, keepdims=True)",
    total="tf.reduce_sum({x})",
)
