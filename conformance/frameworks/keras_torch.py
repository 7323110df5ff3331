"""Keras 3 on the PyTorch backend: the Keras KL APIs as the family `keras_torch` (calls run in a
child process with KERAS_BACKEND=torch; see _keras.py)."""

from __future__ import annotations

from . import Snippet, _keras
from .torch import SNIPPET as TORCH_SNIPPET

ORDER = 34  # place in reports: after Keras on JAX

BINDING = _keras.binding(
    "torch",
    Snippet(  # the child feeds and reads through torch.py's binding
        imports='import os\nos.environ["KERAS_BACKEND"] = "torch"\n' + TORCH_SNIPPET.imports + "\nimport keras",
        native=TORCH_SNIPPET.native,
        to_numpy=TORCH_SNIPPET.to_numpy,
    ),
)
APIS = _keras.apis("torch")
