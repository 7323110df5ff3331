"""The registry of kinds of check (conformance/kinds.py): every consumer derives from it, so a new kind of
check is one module plus one registry entry, and no module spells the set of kinds itself."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import conformance
from conformance import cli, kinds, outcomes, plugin, selection, sharding
from conformance.kinds import check_id
from conformance.report import merge
from conformance.results import Record
from tests import fakes
from tests.test_reliability_faults import _Config

CASES = """\
cases:
  - id: toy-a
    description: two rows
    p: {probs: [[0.2, 0.3, 0.5], [0.1, 0.4, 0.5]]}
    q: {probs: [[0.1, 0.6, 0.3], [0.25, 0.25, 0.5]]}
  - id: toy-b
    description: one row
    p: {probs: [[0.9, 0.05, 0.05]]}
    q: {probs: [[0.3, 0.3, 0.4]]}
"""


@dataclass(frozen=True)
class ToyCheck:
    """A kind of check the project does not have: one per case, API and device, in float64."""

    case_id: str
    api: object
    device: str
    dtype: str = "float64"

    @property
    def id(self) -> str:
        return check_id(self.case_id, self.api.name, "toy", self.device, self.dtype)

    def record(self) -> Record:
        return Record(
            check_id=self.id,
            case_id=self.case_id,
            case_hash="",
            api=self.api.name,
            framework=self.api.framework,
            device=self.device,
            dtype=self.dtype,
            options={},
            verdict="pass",
            check="toy",
        )


def _plan_toys(scope: kinds.Scope) -> list:
    return [
        ToyCheck(case.id, api, device)
        for case in scope.cases
        for api in scope.apis
        for device in scope.devices
        if "float64" in scope.dtypes
    ]


TOY = kinds.Kind(
    "toy",
    "klconf_toy_check",
    "toys",
    "test_toy",
    _plan_toys,
    "tests.test_kinds:_run_toy",
    "nothing beyond the common fields",
    0.01,
)


def _run_toy(check: ToyCheck) -> Record:
    return check.record()


@pytest.fixture
def with_toy(monkeypatch):
    monkeypatch.setattr(kinds, "KINDS", kinds.KINDS + (TOY,))
    return TOY


def test_the_registry_is_the_outcomes_vocabulary_and_well_formed():
    assert kinds.names() == outcomes.CHECK_KIND_NAMES
    for field in ("name", "fixture", "module", "test"):
        values = [getattr(k, field) for k in kinds.KINDS]
        assert len(set(values)) == len(values), field
    checks_dir = Path(conformance.__file__).parent / "checks"
    for kind in kinds.KINDS:
        source = (checks_dir / f"test_{kind.module}.py").read_text()
        assert f"def {kind.test}({kind.fixture}," in source and f'by_name("{kind.name}")' in source
        module, _, function = kind.runner.partition(":")
        assert callable(getattr(__import__(module, fromlist=[function]), function)), kind.runner
        assert kind.payload and kind.base_seconds > 0


def test_a_registered_kind_is_planned_run_selected_and_merged(with_toy, tmp_path):
    (tmp_path / "cases.yaml").write_text(CASES)
    config = _Config(
        klconf_cases=str(tmp_path / "cases.yaml"), klconf_api=["tests.fakes:plugin_apis"], klconf_only_plugins=True
    )
    # the plugin plans it from its options, and finds the check behind a node id of its test
    planned = plugin.selected_checks(config, TOY.fixture)
    assert sorted(c.id for c in planned) == sorted(
        check_id(case, api.name, "toy", "cpu", "float64") for case in ("toy-a", "toy-b") for api in fakes.plugin_apis()
    )
    writer = plugin.ResultsFile(str(tmp_path / "results.jsonl"), "", config)
    nodeid = f"conformance/checks/test_toys.py::test_toy[{selection.node_id(planned[0])}]"
    assert writer._check_of(nodeid) is planned[0]
    assert TOY.run(planned[0]).check_id == planned[0].id
    # the command line offers it and collects its module
    parser = cli.build_parser()
    args = parser.parse_args(["run", "--check", "toy"])
    assert "conformance.checks.test_toys" in cli.selection_arguments(args)
    # merge's completeness plans it from the corpus and the records, and names what no shard ran
    ran = [c.record() for c in planned[1:]]
    result = merge.completeness(ran, str(tmp_path / "cases.yaml"), extra_apis=tuple(fakes.plugin_apis()))
    assert result.missing == [planned[0].id] and result.planned == len(planned)
    assert not any("toy" in note for note in result.not_assessed)
    # sharding estimates its cost like any other kind
    assert sharding.estimate("toy", 1, "float64") > 0


def test_an_unknown_kind_in_records_is_not_assessed_rather_than_guessed(tmp_path):
    (tmp_path / "cases.yaml").write_text(CASES)
    rec = ToyCheck("toy-a", fakes.EXACT, "cpu").record()
    result = merge.completeness([rec], str(tmp_path / "cases.yaml"), extra_apis=(fakes.EXACT,))
    assert result.missing == [] and any("toy checks: no planner" in note for note in result.not_assessed)


def _literal_kind_sets(tree: ast.AST, names: set[str]) -> list[int]:
    """Line numbers of collection literals that spell most of the kinds of check by name."""
    found = []
    for node in ast.walk(tree):
        items = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", None)
        if not isinstance(node, (ast.Dict, ast.Tuple, ast.List, ast.Set)) or items is None:
            continue
        spelled = {i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)} & names
        if len(spelled) > len(names) // 2:
            found.append(node.lineno)
    return found


def test_no_module_spells_the_set_of_kinds_outside_the_registry():
    names = set(kinds.names())
    root = Path(conformance.__file__).parent
    assert _literal_kind_sets(ast.parse('X = {"value": 1, "gradient": 2, "porting": 3, "convention": 4}'), names)
    offenders = {}
    for path in sorted(root.rglob("*.py")):
        if path.name in ("kinds.py", "outcomes.py"):  # the registry and the vocabulary it is held to
            continue
        lines = _literal_kind_sets(ast.parse(path.read_text()), names)
        if lines:
            offenders[str(path.relative_to(root))] = lines
    assert offenders == {}
