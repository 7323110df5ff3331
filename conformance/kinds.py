"""Every kind of check, declared in one place (as pytest's hookspec.py declares its hooks).

A kind says what it is called, which fixture and test function run it (conformance/checks/test_<module>.py),
how it plans its checks from one `Scope`, which function runs one check, and what its records carry. The
pytest plugin (scope from its options), `klconf merge`'s completeness (scope from the corpus and the
records), the command line's `--check`, sharding and the outcomes vocabulary all iterate `KINDS`, so a new
kind of check is one module (check type with `.id`, `.device`, `.dtype`, `.record()`; a planner; a runner)
plus one entry here. Planners import their module lazily: listing the kinds imports no framework.

Every check a planner returns has `.id` (the record's `check_id`), `.device`, `.dtype`, `.record()` (the
record it starts from, also what a crash of its process is recorded as) and either `.api` or `.library`
(whose `.framework` the check belongs to).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Scope:
    """What every planner plans over. The plugin fills it from its options; merge from the corpus and records.

    `strict` decides how case files load: the plugin refuses a corpus with a bad file (raising
    `cases.CaseFileError`), merge plans from the files that load.
    """

    cases_root: str | None
    cases: list
    apis: list
    frameworks: list[str]  # selected framework names (distribution libraries, porting sources)
    devices: list[str]
    dtypes: list[str]
    porting_targets: list[str]
    strict: bool = True
    _distribution_cases: list | None = field(default=None, repr=False)

    def distribution_cases(self) -> list:
        """The distribution case files under `cases_root`, loaded once."""
        if self._distribution_cases is None:
            from .distributions import cases as distribution_cases

            if self.strict:
                self._distribution_cases = distribution_cases.load_cases(self.cases_root)
            else:
                self._distribution_cases, _ = distribution_cases.load_corpus(self.cases_root)
        return self._distribution_cases


@dataclass(frozen=True)
class Kind:
    """One kind of check. `name` is `Record.check` (and an entry of outcomes.CHECK_KINDS)."""

    name: str
    fixture: str  # the fixture its test function takes, parametrized with the planned checks
    module: str  # conformance/checks/test_<module>.py, what `klconf run --check NAME` collects
    test: str  # the test function there (a node id's name before its parameters)
    plan: Callable[[Scope], list]  # the checks of this kind within a scope
    runner: str  # "module:function" that runs one planned check and returns its Record
    payload: str  # what its records carry beyond the common fields (the reader's contract)
    base_seconds: float  # a check's estimated cost before its case's size counts (sharding balances by it)
    tensor_level: bool = False  # one case fed to one API call in one dtype (unsupported dtypes cost nothing)
    shares: Callable[[Any], str] | None = None  # the work a check shares with others of any kind (see `shared_work`)
    # its runner also takes the check this process runs next, where known (`run`): a call that serves both is
    # made once, by the first
    looks_ahead: bool = False

    def shared_work(self, check: Any) -> str:
        """A key naming the work this check shares with other checks ("" for none). Checks with one key
        are kept together, on one shard and one after another in one process, so the work is done once:
        the oracle's values for one case and dtype, or one API call's inferred convention and its calls
        on the corpus (a convention check and the ports of that call)."""
        return self.shares(check) if self.shares is not None else ""

    def run(self, check: Any, upcoming: Any = None):
        """Run one planned check: its Record, whatever the code under test does (the runner's own guard).
        `upcoming`: the planned check this process runs next (None where unknown or none), for a kind that
        `looks_ahead`."""
        module, _, function = self.runner.partition(":")
        runner = getattr(importlib.import_module(module), function)
        return runner(check, upcoming) if self.looks_ahead else runner(check)


def _tensor_planner(module: str) -> Callable[[Scope], list]:
    def plan(scope: Scope) -> list:
        planner = importlib.import_module(module).plan
        return planner(scope.cases, scope.apis, devices=scope.devices, dtypes=scope.dtypes)

    return plan


def _oracle_work(kind: str) -> Callable[[Any], str]:
    """Tensor-level checks of one case, dtype and kind share the oracle's high-precision values."""
    return lambda check: f"{check.case.id}::{check.dtype}::{kind}"


def _inference_work(check: Any) -> str:
    """A convention check and the ports of the same call share its inference and its source calls."""
    return f"inference::{check.api.name}::{check.api.option_label(check.options)}::{check.device}"


def _plan_distributions(scope: Scope) -> list:
    from .distributions import libraries, runner

    return runner.plan(
        scope.distribution_cases(),
        libraries.by_framework(scope.frameworks),
        devices=scope.devices,
        dtypes=[d for d in scope.dtypes if d in runner.DTYPES],
    )


def _plan_conventions(scope: Scope) -> list:
    from .inference.records import plan

    return plan(scope.apis, scope.devices)


def _plan_porting(scope: Scope) -> list:
    from .porting.records import plan

    if "cpu" not in scope.devices:  # ports are verified on the CPU only
        return []
    return plan(scope.apis, scope.porting_targets, scope.cases)


KINDS: tuple[Kind, ...] = (
    Kind(
        "value",
        "klconf_check",
        "values",
        "test_value",
        _tensor_planner("conformance.runner"),
        "conformance.runner:run_check",
        "the output, expected value (with provenance), errors and tolerance; diagnosis on a failure",
        0.05,
        tensor_level=True,
        shares=_oracle_work("value"),
    ),
    Kind(
        "gradient",
        "klconf_gradient_check",
        "gradients",
        "test_gradient",
        _tensor_planner("conformance.gradients"),
        "conformance.gradients:run_gradient_check",
        "options.wrt names the argument; errors of the autodiff gradient against the analytic one",
        0.3,
        tensor_level=True,
        shares=_oracle_work("gradient"),
        looks_ahead=True,
    ),
    Kind(
        "property",
        "klconf_property_check",
        "properties",
        "test_property",
        _tensor_planner("conformance.properties"),
        "conformance.properties:run_property_check",
        "options.property names the property; the quantity it holds to zero (or its sign)",
        0.05,
        tensor_level=True,
        shares=_oracle_work("property"),
    ),
    Kind(
        "distribution",
        "klconf_distribution_check",
        "distributions",
        "test_distribution",
        _plan_distributions,
        "conformance.distributions.runner:run_check",
        "the library's value against the closed form; the library in extra",
        0.05,
    ),
    Kind(
        "convention",
        "klconf_convention_check",
        "conventions",
        "test_convention",
        _plan_conventions,
        "conformance.inference.records:run_convention_check",
        "extra: the inferred and declared fields, the evidence and the disagreeing fields",
        2.5,
        shares=_inference_work,
    ),
    Kind(
        "porting",
        "klconf_porting_check",
        "porting",
        "test_porting",
        _plan_porting,
        "conformance.porting.records:run_porting_check",
        "extra: target_framework, the composed expression and how it fared on every case",
        3.0,
        shares=_inference_work,
    ),
)


# --------------------------------------------------------------------------- what every check is called


def check_id(case_id: str, api: str, option_label: str | None, device: str, dtype: str, qualifier: str = "") -> str:
    """Every kind's check id: `case::api[options]::device::dtype`, then `::qualifier` where one call feeds
    several checks (`d/dy_pred`, a property's name). A distribution-level KL function takes no options:
    `option_label` None leaves the brackets out. Expectation entries expand onto checks through this too."""
    options = "" if option_label is None else f"[{option_label}]"
    return f"{case_id}::{api}{options}::{device}::{dtype}" + (f"::{qualifier}" if qualifier else "")


def start_record(
    check: Any,
    kind: str,
    *,
    case_id: str,
    case_hash: str,
    options: dict | None = None,
    shape: Iterable[int] | None = None,
    tags: Iterable[str] = (),
    **fields: Any,
):
    """The record every check starts from, whatever its kind: its identity, verdict "skip" until it runs.
    It is also what the check is recorded as when its process dies, so it is built from the plan alone.
    `options` defaults to the check's own; `fields` are further Record fields (a tolerance override, a
    declared convention, `extra`)."""
    from .results import Record

    subject = getattr(check, "library", None) or check.api
    return Record(
        check_id=check.id,
        case_id=case_id,
        case_hash=case_hash,
        api=subject.name,
        framework=subject.framework,
        device=check.device,
        dtype=check.dtype,
        options=dict(check.options if options is None else options),
        verdict="skip",
        shape=None if shape is None else [int(n) for n in shape],
        tags=list(tags),
        check=kind,
        **fields,
    )


def names() -> tuple[str, ...]:
    return tuple(k.name for k in KINDS)


def by_name(name: str) -> Kind | None:
    return next((k for k in KINDS if k.name == name), None)


def by_fixture(fixtures: Iterable[str]) -> Kind | None:
    """The kind whose fixture is among `fixtures` (a test's fixture names, or an item's parameters)."""
    return next((k for k in KINDS if k.fixture in fixtures), None)


def by_test(test: str) -> Kind | None:
    return next((k for k in KINDS if k.test == test), None)


def framework_of(check: Any) -> str:
    """The framework a planned check belongs to: its library's for distributions, else its API's."""
    library = getattr(check, "library", None)
    return library.framework if library is not None else check.api.framework


def frameworks_needed(check: Any) -> tuple[str, ...]:
    """Every framework a planned check needs installed: its own, and a port's target framework."""
    own, target = framework_of(check), getattr(check, "target", None)
    return (own,) if target is None or target == own else (own, target)
