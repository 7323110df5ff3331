"""What makes a tensor-level case file valid: its JSON Schema, then what a schema cannot say.

The schema (`schema/case.schema.json`) checks the document's shape; `semantic_errors` checks each entry's
meaning: values that are probabilities where they claim to be, shapes that agree or broadcast, generators
that exist with their parameters in range and a bounded size. Each problem is (path, message), the path
into the document, which the loader turns into file, line and field (`cases.Problem`). The distribution
cases' loader reuses the schema message and the tensor-shape reader.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from . import generators

SCHEMA_PATH = Path(__file__).with_name("schema") / "case.schema.json"
SEED_LIMIT = 2**63  # PCG64 takes any non-negative integer; beyond this a seed is a typo


@functools.lru_cache(maxsize=1)
def validator():
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text())
    return jsonschema.Draft202012Validator(schema)


def schema_errors(data: Any) -> list[tuple[tuple, str]]:
    if not isinstance(data, dict):
        kind = "an empty file" if data is None else f"a {type(data).__name__}"
        return [((), f"expected a mapping with a 'cases' list, found {kind}")]
    errors = []
    for error in validator().iter_errors(data):
        # For oneOf failures, the most specific sub-error says more than "is not valid under any".
        best = most_specific(error)
        errors.append((tuple(best.absolute_path), schema_message(best)))
    return sorted(set(errors), key=lambda e: tuple(map(str, e[0])))


def most_specific(error):
    if error.validator == "oneOf" and error.context:
        # Prefer the branch that got deepest into the instance, then the one with fewest errors.
        branches: dict[int, list] = {}
        for sub in error.context:
            branches.setdefault(sub.schema_path[0], []).append(sub)
        best = max(branches.values(), key=lambda subs: (max(len(s.absolute_path) for s in subs), -len(subs)))
        return most_specific(max(best, key=lambda s: len(s.absolute_path)))
    return error


def schema_message(error) -> str:
    if error.validator == "additionalProperties":
        return f"unknown field(s): {error.message.split('(')[-1].rstrip(')')}"
    if error.validator == "required":
        return error.message.replace("is a required property", "is required")
    return error.message


def semantic_errors(entry: dict) -> list[tuple[tuple, str]]:
    """What JSON Schema cannot say: generator names, ragged rows, domains, shapes."""
    errors: list[tuple[tuple, str]] = []
    shapes = {}
    for side in ("p", "q"):
        spec = entry[side]
        if "generator" in spec:
            errors += [((side,) + p, m) for p, m in _generator_errors(spec)]
            shapes[side] = tuple(spec["shape"])
            continue
        space = "probs" if "probs" in spec else "logits"
        shape, message = tensor_shape(spec[space])
        if message:
            errors.append(((side, space), message))
            continue
        shapes[side] = shape
        values = np.asarray(spec[space], dtype=np.float64)
        if not entry.get("out_of_domain"):
            masked = (values == -np.inf) if space == "logits" else np.zeros(values.shape, bool)  # -inf logit: p = 0
            if not np.all(np.isfinite(values) | masked):
                errors.append(((side, space), "NaN or infinite entries (set out_of_domain: true if deliberate)"))
            elif space == "logits" and values.ndim and np.any(np.all(masked, axis=-1)):
                errors.append(((side, space), "a row of logits that are all -inf has no distribution"))
            elif space == "probs" and np.any(values < 0):
                errors.append(((side, space), "negative probabilities (set out_of_domain: true if deliberate)"))
            elif space == "probs" and np.any(values > 1):
                errors.append(((side, space), "probabilities above 1 (set out_of_domain: true if deliberate)"))
        if shape == ():
            errors.append(((side, space), "a scalar is not a distribution: give at least one row of classes"))
    if errors:  # a side already wrong has no shape worth comparing
        return errors
    if len(shapes) == 2 and shapes["p"] != shapes["q"]:
        if not entry.get("broadcast"):
            errors.append(
                (
                    ("q",),
                    f"shape {list(shapes['q'])} differs from p's shape {list(shapes['p'])} "
                    "(set broadcast: true to test broadcasting)",
                )
            )
        elif _broadcast_shape(shapes["p"], shapes["q"]) is None or shapes["p"][-1] != shapes["q"][-1]:
            errors.append(
                (
                    ("q",),
                    f"shape {list(shapes['q'])} does not broadcast with p's {list(shapes['p'])} "
                    "over the batch (the class axis must match)",
                )
            )
    elif entry.get("broadcast") and len(shapes) == 2:
        errors.append((("broadcast",), "p and q have the same shape: nothing is broadcast"))
    expected = entry.get("expected")
    if expected and len(shapes) == 2 and not errors:
        full = _broadcast_shape(shapes["p"], shapes["q"])
        assert full is not None, "shapes that passed the broadcast check broadcast"
        for key, want in (("kl_per_row", full[:-1]), ("elementwise", full)):
            if key in expected:
                got, message = tensor_shape(expected[key])
                if message:
                    errors.append((("expected", key), message))
                elif got != want:
                    errors.append(
                        (("expected", key), f"shape {list(got)} does not match the inputs: expected {list(want)}")
                    )
    return errors


def _broadcast_shape(a: tuple, b: tuple) -> tuple | None:
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        return None


def _generator_errors(spec: dict) -> list[tuple[tuple, str]]:
    name = spec["generator"]
    if name not in generators.GENERATORS:
        known = ", ".join(sorted(generators.GENERATORS))
        return [(("generator",), f"unknown generator {name!r} (known: {known})")]
    errors: list[tuple[tuple, str]] = []
    allowed = generators.PARAMETERS[name]
    for param in ("alpha", "temperature", "scale", "delta"):
        if param in spec and param not in allowed:
            errors.append(((param,), f"generator {name!r} takes no parameter {param!r}"))
        elif param in spec and not math.isfinite(spec[param]):
            errors.append(((param,), f"must be a finite number, found {spec[param]!r}"))
    # JSON Schema's "integer" admits 3.0; a seed or a dimension must be written as an integer
    for where, value in [(("seed",), spec["seed"])] + [(("shape", i), d) for i, d in enumerate(spec["shape"])]:
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append((where, f"must be an integer, found {value!r}"))
    if errors:
        return errors
    if spec["seed"] >= SEED_LIMIT:
        errors.append((("seed",), f"{spec['seed']} is not a plausible seed (at most 2**63 - 1)"))
    size = math.prod(spec["shape"])
    if size > generators.MAX_ELEMENTS:
        errors.append((("shape",), f"{size:,} values exceed the limit of {generators.MAX_ELEMENTS:,}"))
    if spec["shape"][-1] == 0:
        errors.append((("shape",), "the class axis (last) must not be empty"))
    return errors


def tensor_shape(value: Any) -> tuple[tuple[int, ...], str | None]:
    """Shape of nested lists, or a message saying where they are ragged."""
    if not isinstance(value, list):
        return (), None
    if not value:
        return (0,), None
    shapes = [tensor_shape(v) for v in value]
    for i, (_, message) in enumerate(shapes):
        if message:
            return (), f"[{i}]{message}" if message.startswith("[") else f"[{i}]: {message}"
    first = shapes[0][0]
    for i, (shape, _) in enumerate(shapes[1:], start=1):
        if shape != first:
            return (), f"rows of unequal width: row 0 has shape {list(first)}, row {i} has {list(shape)}"
    return (len(value),) + first, None
