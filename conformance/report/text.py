"""How the report, the diff and JUnit output put values into words: one place, so they agree.

Option labels, convention values, error figures and expected/observed values are formatted
here from plain record fields (a Record's attributes or a parsed check event's keys alike).
"""

from __future__ import annotations

from typing import Any

from ..dtypes import DTYPES
from ..frameworks import FRAMEWORKS
from ..results import number

TEXT_CHARS = 4000  # messages, diagnoses and tracebacks are cut to this many characters


def option_label(options: dict) -> str:
    return ",".join(f"{k}={'None' if v is None else v}" for k, v in options.items())


def framework_order(name: str) -> tuple:
    return (FRAMEWORKS.index(name) if name in FRAMEWORKS else len(FRAMEWORKS), name)


def fmt(value: Any) -> str:
    """A convention field or setting value as short text."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}={fmt(v)}" for k, v in value.items())
    return str(value)


def fmt_field(value: Any) -> str:
    """A convention field's value; per-dtype mappings (output_dtype, accumulation) read compactly,
    per-argument mappings (input_space) as argument: value in call order."""
    if isinstance(value, dict) and value:
        if not all(k in DTYPES for k in value):
            return ", ".join(f"{k}: {fmt(v)}" for k, v in value.items())
        if all(str(k) == str(v) for k, v in value.items()):
            return "same as input"
        if len({fmt(v) for v in value.values()}) == 1:
            return f"{fmt(next(iter(value.values())))} (every dtype)"
        return ", ".join(f"{k} → {fmt(v)}" for k, v in value.items())
    return fmt(value)


def error_figures(r: Any) -> str:
    """abs / rel / ulp error, tolerance and headroom as one line (empty when the check measured none)."""
    parts = []
    for label, value in (
        ("abs", r.abs_error),
        ("rel", r.rel_error),
        ("ulp", r.ulp_error),
        ("tolerance", r.tolerance),
        ("headroom", r.headroom),
    ):
        if value is None:
            continue
        try:
            parts.append(f"{label} {format(number(value), '.3g')}")
        except (TypeError, ValueError):
            parts.append(f"{label} {value}")
    return ", ".join(parts)


def values_text(values: Any, limit: int = 2000) -> str:
    """Expected or observed values as text: a scalar, nested lists, or a large array's summary."""
    if values is None:
        return "—"
    if isinstance(values, dict) and "shape" in values:
        parts = [f"array of shape {values.get('shape')}"]
        if "worst_index" in values:
            parts.append(f"at the worst element {values['worst_index']}: {values.get('at_worst')}")
        parts.append(f"first values: {_compact(values.get('sample'))}")
        return "; ".join(parts)[:limit]
    text = _compact(values)
    return text if len(text) <= limit else text[:limit] + " ..."


def _compact(values: Any) -> str:
    if isinstance(values, list):
        return "[" + ", ".join(_compact(v) for v in values) + "]"
    if isinstance(values, float):
        return repr(values)
    return str(values)


def cut(text: Any, limit: int = TEXT_CHARS) -> str:
    text = str(text or "")
    return text if len(text) <= limit else text[:limit] + " ..."
