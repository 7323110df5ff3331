"""The targets a selection of APIs, libraries, kinds of check, dtypes and devices allows."""

from __future__ import annotations

import itertools

from ..distributions.libraries import Library
from ..frameworks import Api, binding
from .pairs import cross_targets, distribution_targets
from .targets import GradientTarget, Target, ValueTarget, _dtypes


def plan(
    apis: list[Api], libraries: list[Library], kinds: list[str], dtypes: list[str], devices: list[str]
) -> list[Target]:
    """Every target the selection allows: per API its values and each differentiable argument, per library
    its covered family pairs, per declared convention one call pair per two frameworks."""
    usable = [a for a in apis if not (binding(a.framework).available() or a.missing())]
    targets: list[Target] = []
    for api in usable:
        chosen = _dtypes(api.dtypes, dtypes)
        places = [d for d in devices if d in api.devices]
        if not chosen or not places:
            continue
        if "value" in kinds:
            targets.append(ValueTarget(api, chosen, places))
        if "gradient" in kinds and binding(api.framework).gradient is not None:
            targets += [GradientTarget(api, chosen, places, wrt=wrt) for wrt in api.differentiable]
    if "distribution" in kinds:
        targets += distribution_targets(libraries, dtypes or ["float32", "float64"], devices)
    if "cross-framework" in kinds:
        targets += cross_targets(usable, _dtypes(("float64", "float32", "float16", "bfloat16"), dtypes), devices)
    return interleaved(targets)


def interleaved(targets: list[Target]) -> list[Target]:
    """One target of each kind and framework in turn, so that a time budget that runs out before a round
    ends has spent itself on every kind of check and every library, not on those listed first."""
    by_kind: dict[tuple[str, str], list[Target]] = {}
    for target in targets:
        by_kind.setdefault((target.kind, target.framework), []).append(target)
    rounds = itertools.zip_longest(*by_kind.values())
    return [t for group in rounds for t in group if t is not None]
