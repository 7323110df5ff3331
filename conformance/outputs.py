"""What kind of value an API returned, and what it did to its inputs, before its numbers are judged.

A KL divergence is a real number, so a value check (and a gradient or distribution check) fails,
each with its own failure kind, when the output is
  complex      of a complex dtype -- even with every imaginary part zero: a complex result is a
               type error for every caller (ordering, `backward()`, a loss scalar), whatever its
               values, so it is judged by its dtype alone, and the message says whether the
               imaginary parts were zero;
  integer      of an integer dtype (the values were truncated);
  boolean      of a boolean dtype;
  non_numeric  of an object, string or other non-numeric dtype (or a Python str);
  dtype        a real floating dtype other than the one fed, for an API whose `keeps_dtype` says
               its output has its input's dtype;
  alias        sharing memory with an input (writing to the result would change the caller's data);
  mutation     a call that changed an input it was fed (the fed arrays are compared before and after).
Messages have one shape: "out.dtype=complex128, but should be float32".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

FAILURE_KINDS = ("complex", "integer", "boolean", "non_numeric", "dtype", "alias", "mutation")
_PYTHON_KINDS = {bool: "boolean", int: "integer", complex: "complex", str: "non_numeric", bytes: "non_numeric"}


@dataclass(frozen=True)
class Problem:
    kind: str  # one of FAILURE_KINDS
    message: str


def dtype_name(out: Any) -> str | None:
    """The output's dtype name as the framework spells it, without converting it (None: no dtype)."""
    for kind, name in ((bool, "bool"), (int, "int"), (complex, "complex"), (str, "str"), (bytes, "bytes")):
        if type(out) is kind:
            return name
    dtype = getattr(out, "dtype", None)
    if dtype is None:
        return None
    spelled = getattr(dtype, "name", None)
    text = spelled if isinstance(spelled, str) else str(dtype)
    return text.rsplit(".", 1)[-1]  # torch.float32, mlx.core.float32, paddle.float32: the dtype without its module


def type_kind(name: str | None) -> str | None:
    """The failure kind of an output dtype, or None for a real floating dtype (or no dtype to judge)."""
    if name is None:
        return None
    lowered = name.lower()
    if lowered.startswith("complex"):
        return "complex"
    if lowered.startswith(("int", "uint", "qint", "quint")) or lowered == "int":
        return "integer"
    if lowered.startswith("bool"):
        return "boolean"
    if lowered.startswith(("float", "bfloat", "half", "double")):
        return None
    return "non_numeric"


def inputs_before(binding, fw, native: Sequence) -> list[np.ndarray] | None:
    """Copies of the fed arrays, for `problems` to compare after the call (None: immutable arrays)."""
    if not binding.mutable_inputs:
        return None
    return [np.array(binding.to_numpy(fw, x)[0], dtype=np.float64, copy=True) for x in native]


def problems(
    binding,
    fw,
    out: Any,
    native: Sequence,
    before: list[np.ndarray] | None,
    names: Sequence[str],
    fed_dtype: str,
    keeps_dtype: bool = False,
) -> list[Problem]:
    """Every way the output or the call departs from a real-valued result of a pure function."""
    found = []
    name = dtype_name(out)
    kind = type_kind(name)
    if kind is not None:
        expected = fed_dtype if keeps_dtype else f"a real floating-point dtype (fed {fed_dtype})"
        found.append(Problem(kind, f"out.dtype={name}, but should be {expected}{_imaginary(out, kind)}"))
    elif keeps_dtype and name is not None and name != fed_dtype:
        found.append(Problem("dtype", f"out.dtype={name}, but should be {fed_dtype}"))
    for arg, x in zip(names, native):
        try:
            shared = out is x or binding.shares_memory(fw, out, x)
        except Exception:  # an output the check cannot look into shares nothing it can see
            shared = False
        if shared:
            found.append(Problem("alias", f"the output shares memory with the input {arg!r}"))
    if before is not None:
        for arg, x, was in zip(names, native, before):
            now = np.asarray(binding.to_numpy(fw, x)[0], np.float64)
            changed = _first_change(was, now)
            if changed:
                found.append(Problem("mutation", f"the call changed its input {arg!r}: {changed}"))
    return found


def _imaginary(out: Any, kind: str) -> str:
    if kind != "complex":
        return ""
    try:
        imag = np.imag(np.asarray(out))
    except Exception:
        return ""
    if not np.any(imag):
        return " (every imaginary part is 0)"
    return f" (imaginary parts up to {np.max(np.abs(imag)):.3g})"


def _first_change(before: np.ndarray, after: np.ndarray) -> str:
    """'' when the arrays hold the same values (NaN equal to NaN, -0.0 apart from 0.0), else where they differ."""
    if before.shape != after.shape:
        return f"shape {list(before.shape)} -> {list(after.shape)}"
    same = (before == after) & (np.signbit(before) == np.signbit(after)) | (np.isnan(before) & np.isnan(after))
    if same.all():
        return ""
    index = tuple(int(i) for i in np.argwhere(~same)[0])
    return f"{int((~same).sum())} value(s), first at {list(index)}: {before[index]:.9g} -> {after[index]:.9g}"


def as_kind(found: list[Problem]) -> tuple[str, str]:
    """One record's failure kind (the first problem's) and its message (every problem's)."""
    return found[0].kind, "; ".join(p.message for p in found)


def shares_memory(fw, out: Any, x: Any) -> bool:
    """NumPy arrays: whether the output's memory overlaps the input's (the default of Binding.shares_memory)."""
    return isinstance(out, np.ndarray) and isinstance(x, np.ndarray) and bool(np.may_share_memory(out, x))
