"""Keras 3 on the JAX backend: the Keras KL APIs as the family `keras_jax` (calls run in a child
process with KERAS_BACKEND=jax; see _keras.py). float64 runs with JAX's x64 mode, as jax.py does."""

from __future__ import annotations

from . import Snippet, _keras
from .jax import SNIPPET as JAX_SNIPPET

ORDER = 32  # place in reports: after Keras on TensorFlow

BINDING = _keras.binding(
    "jax",
    Snippet(  # the child feeds and reads through jax.py's binding
        imports='import os\nos.environ["KERAS_BACKEND"] = "jax"\n' + JAX_SNIPPET.imports + "\nimport keras",
        prelude=JAX_SNIPPET.prelude,
        native=JAX_SNIPPET.native,
        to_numpy=JAX_SNIPPET.to_numpy,
    ),
    check_settings=lambda fw, dtype, device: {"jax_enable_x64": dtype == "float64"},
)
APIS = _keras.apis("jax")
