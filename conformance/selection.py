"""What a run selects, planned once per pytest config: APIs, cases, expectations and every kind's checks.

The pytest plugin parametrizes with these, and the results file (`results_file.py`), in the process that
writes it, maps each collected test back to its planned check with the same plan, so both agree on every id.
Each is cached on the config object: a run of several kinds plans the cases and APIs once.
"""

from __future__ import annotations

import pytest

from . import cases as cases_mod
from . import device_skips, expectations, frameworks, kinds
from .dtypes import DTYPES


def selected_apis(config) -> list[frameworks.Api]:
    cached = getattr(config, "_klconf_apis", None)
    if cached is None:
        names = config.getoption("klconf_framework") or list(frameworks.FRAMEWORKS)
        cached = (
            []
            if config.getoption("klconf_only_plugins")
            else frameworks.builtin_apis([n for n in names if n in frameworks.FRAMEWORKS])
        )
        for spec in config.getoption("klconf_api"):
            try:
                cached += frameworks.load_plugin(spec)
            except Exception as exc:
                raise pytest.UsageError(f"--klconf-api {spec}: {type(exc).__name__}: {exc}") from None
        config._klconf_apis = cached
    return cached


def selected_cases(config) -> list[cases_mod.Case]:
    cached = getattr(config, "_klconf_cases", None)
    if cached is None:
        try:
            cached = cases_mod.load_cases(config.getoption("klconf_cases"))
        except cases_mod.CaseFileError as exc:
            raise pytest.UsageError(f"invalid case files:\n{exc}") from None
        config._klconf_cases = cached
    return cached


def manifest(config) -> expectations.Manifest | None:
    """Known failures, expanded against every built-in API (and plug-ins) so a filtered run still validates them."""
    if not hasattr(config, "_klconf_manifest"):
        where = config.getoption("klconf_expectations", None)
        if where == "none":
            config._klconf_manifest = None
        else:
            apis = frameworks.builtin_apis() + [a for a in selected_apis(config) if a.framework == "numpy"]
            loaded = expectations.load(where, selected_cases(config), apis)
            if loaded.problems:
                raise pytest.UsageError("invalid expectations manifest:\n" + "\n".join(map(str, loaded.problems)))
            config._klconf_manifest = loaded
    return config._klconf_manifest


def corpus_hash(config) -> str:
    return cases_mod.corpus_hash(selected_cases(config))


def devices(config) -> list[str]:
    return config.getoption("klconf_device") or list(frameworks.DEVICES)


def scope(config) -> kinds.Scope:
    """What this run's options select, for every kind's planner; built once per run."""
    cached = getattr(config, "_klconf_scope", None)
    if cached is None:
        names = config.getoption("klconf_framework") or list(frameworks.FRAMEWORKS)
        cached = kinds.Scope(
            cases_root=config.getoption("klconf_cases"),
            cases=selected_cases(config),
            apis=selected_apis(config),
            frameworks=list(names),
            devices=devices(config),
            dtypes=config.getoption("klconf_dtype") or list(DTYPES),
            porting_targets=list(names),
        )
        config._klconf_scope = cached
    return cached


def selected_checks(config, fixture: str = "klconf_check") -> list:
    """The checks of one kind (named by its fixture) this run selects; planned once per run."""
    plans = config.__dict__.setdefault("_klconf_plans", {})
    if fixture not in plans:
        kind = kinds.by_fixture([fixture])
        assert kind is not None, f"no kind of check has the fixture {fixture}"
        try:
            planned = kind.plan(scope(config))
        except cases_mod.CaseFileError as exc:
            raise pytest.UsageError(f"invalid {kind.name} case files:\n{exc}") from None
        plans[fixture] = device_skips.without_absent(
            config, kind, planned, devices(config), node_id, scope(config).frameworks
        )
    return plans[fixture]


def node_id(check) -> str:
    """The check id without '::' (which pytest reads as a node separator) and with () for options."""
    return check.id.replace("::", "-").replace("[", "(").replace("]", ")")
