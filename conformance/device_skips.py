"""The checks a run does not plan on a device this machine cannot have, counted instead of run.

device_presence decides, without importing a framework, that no GPU can be seen here; the plugin then
plans no check on it and keeps, per framework and device, how many checks it left out and why. The end
record's `device_skips` and the report show that count once, in place of one skip record per check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import device_presence, kinds
from .kinds import Kind


def without_absent_devices(
    config, kind: Kind, checks: list, devices: list[str], pytest_id: Callable[[Any], str]
) -> list:
    """The checks on a device this machine cannot have (device_presence) are not run one by one: each would be
    a skip. They are counted per framework and device for the end record instead. When every selected device
    is absent (`--klconf-device cuda` on a machine without a GPU) they are planned as usual, so the run still
    shows one skip per check it was asked for."""
    absent = device_presence.absent_devices()
    if not absent or all(d in absent for d in devices):
        return checks
    skipped = config.__dict__.setdefault("_klconf_device_skips", {})
    selected = _selection_matcher(config, pytest_id)
    kept = []
    for check in checks:
        if check.device in absent:
            if not selected(kind, check):
                continue
            key = (kinds.framework_of(check), check.device)
            skipped[key] = skipped.get(key, 0) + 1
        else:
            kept.append(check)
    return kept


def _selection_matcher(config, pytest_id: Callable[[Any], str]) -> Callable[[Kind, Any], bool]:
    """Whether pytest's -k and -m would select a check, so the device skips count what the user selected.
    -k matches its expression's words as substrings of the test's name and markers, as pytest does (the test
    module's and directory's names are not among them); -m matches marker names."""
    from _pytest.mark.expression import Expression

    keyword = config.getoption("keyword", "") or ""
    markexpr = config.getoption("markexpr", "") or ""
    by_keyword = Expression.compile(keyword) if keyword else None
    by_marker = Expression.compile(markexpr) if markexpr else None

    def matches(kind: Kind, check) -> bool:
        markers = {kinds.framework_of(check), check.device, check.dtype, "klconf"}
        names = {kind.test, f"{kind.test}[{pytest_id(check)}]", *markers}

        def in_a_name(word: str, /, **_: object) -> bool:
            return any(word.lower() in name.lower() for name in names)

        def is_a_marker(name: str, /, **_: object) -> bool:
            return name in markers

        if by_keyword and not by_keyword.evaluate(in_a_name):
            return False
        return not by_marker or by_marker.evaluate(is_a_marker)

    return matches


def summary(config) -> list[dict]:
    """One entry per framework and absent device: how many checks were not planned there, and why."""
    absent = device_presence.absent_devices()
    return [
        {"framework": framework, "device": device, "checks": count, "reason": absent.get(device, "")}
        for (framework, device), count in sorted(config.__dict__.get("_klconf_device_skips", {}).items())
    ]
