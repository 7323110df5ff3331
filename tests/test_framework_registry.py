"""The framework registry: a framework is one module, and every list of framework names derives from it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from conformance import frameworks
from conformance.distributions import libraries
from conformance.frameworks import Api, Binding
from conformance.porting import vocabulary

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", frameworks.KNOWN)
def test_every_framework_module_is_complete(name):
    module = frameworks._module(name)
    assert frameworks.problems(module) == []
    assert frameworks.binding(name).name == name
    assert all(api.framework == name for api in module.APIS)


def _fake_module(name="fakefw", **parts) -> types.ModuleType:
    module = types.ModuleType(f"conformance.frameworks.{name}")
    for key, value in parts.items():
        setattr(module, key, value)
    return module


def _binding(name: str) -> Binding:
    return Binding(
        name=name,
        modules=("numpy",),
        load=lambda: None,
        version=lambda fw: {},
        devices=lambda fw: ["cpu"],
        to_native=lambda *a: None,
        to_numpy=lambda *a: None,
    )


@pytest.mark.parametrize(
    "parts, complaint",
    [
        ({"APIS": []}, "BINDING is missing"),
        ({"BINDING": "torch", "APIS": []}, "BINDING is missing or not a Binding"),
        ({"BINDING": _binding("other"), "APIS": []}, "BINDING.name is 'other'"),
        ({"BINDING": _binding("fakefw")}, "APIS is missing"),
        ({"BINDING": _binding("fakefw"), "APIS": [object()]}, "not a list of Api entries"),
        ({"BINDING": _binding("fakefw"), "APIS": frameworks._module("torch").APIS[:1]}, "declares framework 'torch'"),
        ({"BINDING": _binding("fakefw"), "APIS": [], "ORDER": "first"}, "ORDER is not an int"),
        ({"BINDING": _binding("fakefw"), "APIS": [], "VOCABULARY": vocabulary.vocabulary("torch")}, "VOCABULARY"),
        ({"BINDING": _binding("fakefw"), "APIS": [], "distribution_libraries": []}, "not a function"),
    ],
)
def test_an_incomplete_framework_module_is_named_with_what_it_lacks(parts, complaint):
    found = frameworks.problems(_fake_module(**parts))
    assert len(found) == 1 and complaint in found[0], found


def test_framework_lists_derive_from_the_registry():
    from conformance import plugin
    from conformance.report.aggregate import framework_order

    assert set(frameworks.FRAMEWORKS) <= set(frameworks.KNOWN) and "numpy" in frameworks.KNOWN
    assert "numpy" not in frameworks.FRAMEWORKS  # a binding with no built-in API serves plug-ins only
    assert {"paddle", "mlx", "keras_jax", "keras_torch"} <= set(frameworks.FRAMEWORKS)
    assert set(frameworks.KNOWN) <= set(plugin.MARKERS)
    assert vocabulary.TARGETS == frameworks.PORTING_TARGETS
    assert all(vocabulary.vocabulary(t).framework == t for t in vocabulary.TARGETS)
    assert "keras_jax" not in vocabulary.TARGETS  # no VOCABULARY: not a porting target
    assert sorted(frameworks.FRAMEWORKS, key=framework_order) == list(frameworks.FRAMEWORKS)
    assert {lib.name for lib in libraries.by_framework(["paddle"])} == {"paddle.distribution.kl_divergence"}
    assert {api.framework for api in frameworks.builtin_apis()} == set(frameworks.FRAMEWORKS)


NEW_FRAMEWORK = '''
"""A framework klconf has never heard of: one module, and nothing else edited."""
import dataclasses

import numpy as np

from ..conventions import Convention
from ..porting.vocabulary import Vocabulary
from . import Api
from .numpy import BINDING as _NUMPY

BINDING = dataclasses.replace(_NUMPY, name="newfw", _handle=None)
ORDER = 5
APIS = [Api(
    name="newfw.rel_entr_sum", framework="newfw",
    call=lambda fw, p, q, o, w: np.sum(p * np.log(p / q), axis=-1),
    convention=lambda o: Convention(arguments=("p", "q"), p_argument="p", input_space=("prob", "prob"),
                                    reduction="per_row", class_axis=-1, zero_p="nan", zero_both="nan"),
    dtypes=("float64",), devices=("cpu",), snippet="np.sum({a} * np.log({a} / {b}), axis=-1)",
)]
VOCABULARY = Vocabulary(framework="newfw", imports=(), native="np.asarray({x})", to_numpy="np.asarray({x})",
                        scope="", log="np.log({x})", xlogy="{x} * np.log({y})", where="np.where({c}, {a}, {b})",
                        constant="{value}", clip="np.clip({x}, {lo}, {hi})", sum="np.sum({x}, axis={axis})",
                        sum_keep="np.sum({x}, axis={axis}, keepdims=True)", total="np.sum({x})")
'''


def test_a_new_framework_module_is_picked_up_with_no_other_edit(tmp_path):
    shutil.copytree(ROOT / "conformance", tmp_path / "conformance", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "conformance" / "frameworks" / "newfw.py").write_text(NEW_FRAMEWORK)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    probe = textwrap.dedent("""
        import json
        import conformance
        from conformance import frameworks, plugin
        from conformance.porting.vocabulary import TARGETS
        from conformance.report.aggregate import framework_order
        print(json.dumps({"file": conformance.__file__, "frameworks": frameworks.FRAMEWORKS,
                          "marker": "newfw" in plugin.MARKERS, "targets": TARGETS,
                          "first": sorted(frameworks.FRAMEWORKS, key=framework_order)[0]}))
    """)
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True, check=True
    )
    seen = json.loads(out.stdout)
    assert seen["file"].startswith(str(tmp_path))
    assert "newfw" in seen["frameworks"] and seen["marker"] and "newfw" in seen["targets"]
    assert seen["first"] == "newfw"  # ORDER = 5 puts it before torch in reports

    results = tmp_path / "out"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance",
            "run",
            "--framework",
            "newfw",
            "--cases",
            str(ROOT / "cases"),
            "--check",
            "value",
            "-k",
            "forum-example",
            "-n",
            "0",
            "--out",
            str(results),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    records = [json.loads(line) for line in (results / "results.jsonl").read_text().splitlines()]
    checks = [r for r in records if r.get("api") == "newfw.rel_entr_sum"]
    verdicts = {r["dtype"]: r["verdict"] for r in checks}
    assert verdicts.pop("float64") == "pass", run.stdout[-2000:] + run.stderr[-2000:]
    assert set(verdicts.values()) == {"unsupported"}  # the dtypes it does not declare

    rejected = subprocess.run(
        [sys.executable, "-m", "conformance", "apis", "--framework", "nosuchfw"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert rejected.returncode != 0


def test_an_api_of_an_unknown_framework_is_refused():
    fake = Api(name="x", framework="nosuchfw", call=lambda *a: None, convention=lambda o: None)
    with pytest.raises(KeyError, match="unknown framework 'nosuchfw'"):
        frameworks.builtin_apis([fake.framework])
