"""The checks a run does not plan because this machine lacks their device or framework, counted instead of run.

device_presence decides, without importing a framework, that no GPU can be seen here, and each framework's
binding, by looking for its modules without importing them, that it is not installed. The plugin then plans
no check on that device or needing that framework (its own API's, or a port's target) and keeps, per
framework and device, how many checks it left out and why. The end record's `device_skips` and the report
show that count once, in place of one skip record per check: a machine without a GPU or without one of the
frameworks would otherwise write thousands of them, each costing a test item.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from . import device_presence, frameworks, kinds
from .kinds import Kind


def without_absent(
    config, kind: Kind, checks: list, devices: list[str], node_id: Callable[[Any], str], names: Iterable[str] = ()
) -> list:
    """The checks on a device this machine cannot have (device_presence), or needing a selected framework
    (`names`) that is not installed, are not run one by one: each would be a skip. They are counted per
    framework and device for the end record instead. When every selected device, or every selected
    framework, is absent (`--klconf-device cuda` on a machine without a GPU, `--klconf-framework paddle`
    without PaddlePaddle) that absence is planned as usual, so the run still shows one skip per check it
    was asked for."""
    absent = device_presence.absent_devices()
    if all(d in absent for d in devices):
        absent = {}
    missing = absent_frameworks(names)
    if not absent and not missing:
        return checks
    skipped = config.__dict__.setdefault("_klconf_device_skips", {})
    selected = _selection_matcher(config, node_id)
    kept = []
    for check in checks:
        why = _absence(check, absent, missing)
        if why is None:
            kept.append(check)
        elif selected(kind, check):
            entry = skipped.setdefault(why[:2], [0, why[2]])
            entry[0] += 1
    return kept


def absent_frameworks(names: Iterable[str]) -> dict[str, str]:
    """The selected frameworks that are not installed, each with the reason (checked without importing);
    none when every selected framework is absent."""
    known = [n for n in dict.fromkeys(names) if n in frameworks.FRAMEWORKS]
    missing = {n: reason for n in known if (reason := frameworks.binding(n).available())}
    return {} if len(missing) == len(known) else missing


def _absence(check, absent_devices: dict[str, str], missing: dict[str, str]) -> tuple[str, str, str] | None:
    """(framework, device, reason) for a check this machine cannot run, None for one it may."""
    if check.device in absent_devices:
        return kinds.framework_of(check), check.device, absent_devices[check.device]
    for name in kinds.frameworks_needed(check):
        if name in missing:
            return name, check.device, missing[name]
    return None


def _selection_matcher(config, node_id: Callable[[Any], str]) -> Callable[[Kind, Any], bool]:
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
        names = {kind.test, f"{kind.test}[{node_id(check)}]", *markers}

        def in_a_name(word: str, /, **_: object) -> bool:
            return any(word.lower() in name.lower() for name in names)

        def is_a_marker(name: str, /, **_: object) -> bool:
            return name in markers

        if by_keyword and not by_keyword.evaluate(in_a_name):
            return False
        return not by_marker or by_marker.evaluate(is_a_marker)

    return matches


def summary(config) -> list[dict]:
    """One entry per framework and device left out: how many checks were not planned there, and why."""
    return [
        {"framework": framework, "device": device, "checks": count, "reason": reason}
        for (framework, device), (count, reason) in sorted(config.__dict__.get("_klconf_device_skips", {}).items())
    ]
