"""NumPy binding: the framework for plug-in adapters written against NumPy (and klconf's fakes)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from . import Binding, Snippet, Unavailable


def _load():
    return SimpleNamespace(np=np)


def cpu_only(fw, values, dtype, device):
    """to_native for NumPy-based libraries: CPU only; float16/32/64 as themselves."""
    if device != "cpu":
        raise Unavailable("NumPy runs on the CPU only")
    if dtype == "bfloat16":
        raise Unavailable("NumPy has no bfloat16")
    return np.array(values, dtype=dtype)


def as_float64(fw, out):
    arr = np.asarray(out)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"output is not a numeric array (got {type(out).__name__} of dtype {arr.dtype})")
    return arr.astype(np.float64), str(arr.dtype)


BINDING = Binding(
    name="numpy",
    modules=("numpy",),
    load=_load,
    version=lambda fw: {"numpy": np.__version__},
    devices=lambda fw: ["cpu"],
    to_native=cpu_only,
    to_numpy=as_float64,
    snippet=Snippet(  # mirrors cpu_only and as_float64
        imports="",
        native=lambda values, dtype, device: f"np.array({values}, dtype={dtype!r})",
        to_numpy="np.asarray({result}).astype(np.float64)",
    ),
)
APIS: list = []
