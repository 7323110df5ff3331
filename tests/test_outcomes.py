"""The outcomes vocabulary (conformance/outcomes.py) is the one list: the results schema, INTERPRETING.md and the
code that makes records name exactly its members."""

import ast
import json
import re
from pathlib import Path

from conformance import outcomes, outputs, plugin, results

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads(results.SCHEMA_PATH.read_text(encoding="utf-8"))


def _listed(description: str) -> tuple[str, ...]:
    """The members a schema description lists after 'one of:' (up to the parenthesis)."""
    found = re.search(r"[Oo]ne of: ([^()]*) \(", description)
    assert found, description
    return tuple(name.strip() for name in found.group(1).split(","))


def test_the_schema_names_exactly_the_vocabulary():
    fields = SCHEMA["$defs"]["check"]["properties"]
    assert _listed(fields["verdict"]["description"]) == outcomes.VERDICT_NAMES
    assert _listed(fields["kind"]["description"]) == outcomes.FAILURE_KIND_NAMES
    assert _listed(fields["check"]["description"]) == outcomes.CHECK_KIND_NAMES
    consts = {m.group(1) for m in re.finditer(r'"check":\s*\{\s*"const":\s*"(\w+)"', results.SCHEMA_PATH.read_text())}
    assert consts <= set(outcomes.CHECK_KIND_NAMES)


def test_every_member_is_documented_once_and_the_readers_contract_covers_it():
    guide = (ROOT / "INTERPRETING.md").read_text(encoding="utf-8")
    for vocabulary in (outcomes.VERDICTS, outcomes.FAILURE_KINDS, outcomes.CHECK_KINDS):
        names = [t.name for t in vocabulary]
        assert len(names) == len(set(names)) and all(t.meaning for t in vocabulary)
        for name in names:
            assert f"`{name}`" in guide, f"INTERPRETING.md does not explain {name!r}"
    assert f"SCHEMA_VERSION` is {results.SCHEMA_VERSION}" in guide


def test_the_code_uses_only_the_vocabulary():
    assert results.VERDICTS == outcomes.VERDICT_NAMES and set(results.FAILING) <= set(outcomes.VERDICT_NAMES)
    assert set(outputs.FAILURE_KINDS) <= set(outcomes.FAILURE_KIND_NAMES)
    assert tuple(k.name for k in plugin.KINDS) == outcomes.CHECK_KIND_NAMES
    # every literal a module assigns to a record's verdict or kind is a member
    assigned = {"verdict": set(), "kind": set(), "check": set()}
    for path in (ROOT / "conformance").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            pairs = []
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    targets = target.elts if isinstance(target, ast.Tuple) else [target]
                    values = (
                        node.value.elts
                        if isinstance(node.value, ast.Tuple) and len(node.value.elts) == len(targets)
                        else [node.value] * len(targets)
                    )
                    pairs += list(zip(targets, values))
            elif isinstance(node, ast.keyword) and node.arg in assigned:
                pairs.append((ast.Attribute(value=ast.Name("_"), attr=node.arg), node.value))
            for target, value in pairs:
                if (
                    isinstance(target, ast.Attribute)
                    and target.attr in assigned
                    and isinstance(value, ast.Constant)
                    and isinstance(value.value, str)
                ):
                    assigned[target.attr].add(value.value)
    assert assigned["verdict"] <= set(outcomes.VERDICT_NAMES), assigned["verdict"]
    assert assigned["kind"] - {""} <= set(outcomes.FAILURE_KIND_NAMES), assigned["kind"]
    assert assigned["check"] <= set(outcomes.CHECK_KIND_NAMES), assigned["check"]
    assert {"verdict", "kind"} and assigned["verdict"] >= {"fail", "error", "skip", "unsupported"}
