"""Reproduction snippets: every API renders one, and a failing check's snippet, run on its own,
returns exactly the value the check observed (torch, SciPy, JAX and TensorFlow where installed;
NumPy plug-ins always)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conformance import cases, conventions, repro, runner
from conformance.conventions import Convention
from conformance.dtypes import round_to
from conformance.frameworks import Api, binding, builtin_apis
from conformance.results import number
from tests import fakes

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def corpus():
    return {c.id: c for c in cases.load_cases()}


def _check(corpus, case, api, dtype="float32", device="cpu", **options):
    return runner.Check(corpus[case], api, tuple((options or api.options[0]).items()), device, dtype)


def _run(check):
    return runner.run_check(check)


def _execute(snippet: str, tmp_path: Path, plugin: bool = False) -> np.ndarray:
    """Run a snippet in a fresh interpreter; return its `observed`. Plug-in snippets import their module,
    so they get the repository on the path; framework snippets get nothing but the interpreter."""
    script = tmp_path / "repro.py"
    script.write_text(snippet)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if plugin:
        env["PYTHONPATH"] = str(ROOT)
    probe = (
        "import json, runpy, sys; ns = runpy.run_path(sys.argv[1]); "
        "print('KLCONF_OBSERVED=' + json.dumps(ns['observed'].tolist()))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(script)],
        capture_output=True,
        text=True,
        cwd=ROOT if plugin else tmp_path,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "observed:" in proc.stdout
    line = next(text for text in proc.stdout.splitlines() if text.startswith("KLCONF_OBSERVED="))
    return np.asarray(json.loads(line.split("=", 1)[1]), dtype=np.float64)


def _recorded(values) -> np.ndarray:
    def floats(v):
        return [floats(x) for x in v] if isinstance(v, list) else number(v)

    return np.asarray(floats(values), dtype=np.float64)


def _assert_reproduces(record, observed: np.ndarray) -> None:
    np.testing.assert_array_equal(observed, _recorded(record.observed))


# --------------------------------------------------------------------------- rendering, no framework needed


@pytest.mark.parametrize("api", builtin_apis(), ids=lambda a: a.name)
def test_every_builtin_api_renders_a_snippet_for_every_option(corpus, api):
    assert api.snippet is not None, f"{api.name} has no snippet template"
    assert binding(api.framework).snippet is not None
    for options in api.options:
        for dtype in ("float32", "float64"):
            check = _check(corpus, "sequence-2x3x5", api, dtype, **options)
            conv = runner.declared(check)
            args = runner.fed_arguments(check.case, conv, dtype)
            weights = runner.weights_for(check.case.shape) if options.get("sample_weight") else None
            exp = conventions.expectation(conv, args, weights)
            text = repro.snippet(check, args, weights, conv, exp.value)
            compile(text, f"<{check.id}>", "exec")
            assert "conformance" not in text  # needs only the framework and NumPy
            assert f"# klconf reproduction of {check.id}" in text


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_literals_hold_the_fed_values_exactly(dtype):
    rng = np.random.default_rng(7)
    values = np.concatenate(
        [
            rng.standard_normal(40) * 10.0 ** rng.integers(-30, 30, 40),
            [0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, 1e-40, 6.1e-5],
        ]
    )
    fed = round_to(values, dtype).reshape(4, 12)
    back = eval(repro.literal(fed, "x"), {"np": np})
    assert back.dtype == fed.dtype
    np.testing.assert_array_equal(back, fed)
    assert np.array_equal(np.signbit(back), np.signbit(fed))


def test_only_failing_and_erroring_checks_store_a_snippet(corpus):
    assert "repro" not in _run(_check(corpus, "canonical-2x3", fakes.EXACT, "float64", reduction="sum")).extra
    failed = _run(_check(corpus, "canonical-2x3", fakes.SCALED, "float64", reduction="sum"))
    assert (
        failed.verdict == "fail" and "api.call(fw, input, target, {'reduction': 'sum'}, None)" in failed.extra["repro"]
    )
    errored = _run(_check(corpus, "canonical-2x3", RAISES, "float64"))
    assert errored.verdict == "error" and "from tests.test_repro import RAISES as entry" in errored.extra["repro"]


def _raise(fw, a, b, o, w):
    raise RuntimeError("kernel exploded")


RAISES = Api(
    name="fake.raises",
    framework="numpy",
    call=_raise,
    convention=fakes.EXACT.convention,
    options=fakes.EXACT.options[:1],
    devices=("cpu",),
)


def test_a_snippet_problem_never_changes_the_verdict(corpus, monkeypatch):
    monkeypatch.setattr(repro, "snippet", lambda *a, **k: 1 / 0)
    rec = _run(_check(corpus, "canonical-2x3", fakes.SCALED, "float64", reduction="sum"))
    assert rec.verdict == "fail" and rec.extra["repro_error"].startswith("ZeroDivisionError")


def test_plugin_snippet_reproduces_the_observed_value(corpus, tmp_path):
    rec = _run(_check(corpus, "dirichlet-8x5", fakes.SCALED, "float32", reduction="none"))
    assert rec.verdict == "fail"
    _assert_reproduces(rec, _execute(rec.extra["repro"], tmp_path, plugin=True))


def test_plugin_snippet_that_raises_raises_the_same(corpus, tmp_path):
    rec = _run(_check(corpus, "canonical-2x3", RAISES, "float64"))
    script = tmp_path / "repro.py"
    script.write_text(rec.extra["repro"])
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert proc.returncode != 0 and "RuntimeError: kernel exploded" in proc.stderr


def test_large_inputs_are_regenerated_not_printed(corpus, tmp_path):
    rec = _run(_check(corpus, "dirichlet-16x64", fakes.SCALED, "float64", reduction="none"))
    snippet = rec.extra["repro"]
    assert "too large to print" in snippet and "fed_value(case, 'p', 'prob', 'float64')" in snippet
    assert len(snippet) < 4000 and "expected_at_worst" in snippet
    observed = _execute(snippet, tmp_path, plugin=True)
    assert observed.shape == (16, 64)
    worst = tuple(rec.observed["worst_index"])
    assert observed[worst] == number(rec.observed["at_worst"])
    np.testing.assert_array_equal(observed.ravel()[:8], _recorded(rec.observed["sample"]))


# --------------------------------------------------------------------------- real frameworks, where installed


def _declaring(api: Api, **changes) -> Api:
    """The same call declared with a convention it does not have: a planted finding."""
    return dataclasses.replace(api, convention=lambda o: api.convention(o).replace(**changes))


def test_torch_nan_failure_reproduces(corpus, tmp_path):
    pytest.importorskip("torch")
    from conformance.frameworks import torch as adapter

    kl_div = adapter.APIS[0]
    rec = _run(_check(corpus, "canonical-2x3", kl_div, "float32", reduction="none", log_target=True))
    assert rec.verdict == "fail" and rec.kind == "nan"
    snippet = rec.extra["repro"]
    assert "torch.nn.functional.kl_div(input, target, reduction='none', log_target=True)" in snippet
    assert "-np.inf" in snippet  # log P of the zero target, literally
    _assert_reproduces(rec, _execute(snippet, tmp_path))


def test_torch_value_failure_reproduces(corpus, tmp_path):
    pytest.importorskip("torch")
    from conformance.frameworks import torch as adapter

    wrong = _declaring(adapter.APIS[1], reduction="mean_batch")  # KLDivLoss 'mean' divides by every element
    rec = _run(_check(corpus, "dirichlet-8x5", wrong, "float64", reduction="mean", log_target=False))
    assert rec.verdict == "fail" and rec.kind == "value"
    _assert_reproduces(rec, _execute(rec.extra["repro"], tmp_path))


def test_torch_class_axis_snippet_reproduces(corpus, tmp_path):
    pytest.importorskip("torch")
    from conformance.frameworks import torch as adapter

    ce = next(a for a in adapter.APIS if a.name == "torch.nn.functional.cross_entropy-entropy")
    wrong = _declaring(ce, p_argument="input")  # P fed as the logits, Q as the target: KL(Q||P) observed
    rec = _run(_check(corpus, "sequence-2x3x5", wrong, "float32", reduction="none"))
    if rec.verdict != "fail":
        pytest.skip(f"the planted convention passed ({rec.message})")
    assert "np.moveaxis(input, -1, 1)" in rec.extra["repro"]
    _assert_reproduces(rec, _execute(rec.extra["repro"], tmp_path))


def test_scipy_failure_reproduces(corpus, tmp_path):
    pytest.importorskip("scipy")
    from conformance.frameworks import scipy as adapter

    rel_entr = adapter.APIS[0]
    wrong = dataclasses.replace(
        rel_entr,
        convention=lambda o: Convention(
            arguments=("x", "y"),
            p_argument="x",
            input_space=("prob", "prob"),
            reduction="none",
            class_axis=None,
            elementwise="p*log(p/q)-p+q",
        ),
    )
    rec = _run(_check(corpus, "dirichlet-8x5", wrong, "float32"))
    assert rec.verdict == "fail" and rec.kind == "value"
    assert "result = scipy.special.rel_entr(x, y)" in rec.extra["repro"]
    _assert_reproduces(rec, _execute(rec.extra["repro"], tmp_path))


def test_jax_failure_reproduces(corpus, tmp_path):
    pytest.importorskip("optax")
    from conformance.frameworks import jax as adapter

    api = next(a for a in adapter.APIS if a.name == "optax.losses.kl_divergence_with_log_targets")
    rec = _run(_check(corpus, "canonical-2x3", api, "float64"))
    assert rec.verdict == "fail"
    assert 'jax.config.update("jax_enable_x64", True)' in rec.extra["repro"]
    _assert_reproduces(rec, _execute(rec.extra["repro"], tmp_path))


def test_tensorflow_failure_reproduces(corpus, tmp_path):
    pytest.importorskip("tensorflow")
    from conformance.frameworks import tensorflow as adapter

    wrong = _declaring(adapter.APIS[0], reduction="sum")  # declared sum, computes the mean over the batch
    rec = _run(
        _check(corpus, "dirichlet-8x5", wrong, "float32", reduction="sum_over_batch_size", sample_weight="per_row")
    )
    assert rec.verdict == "fail"
    assert "with tf.device('/CPU:0'):" in rec.extra["repro"] and "sample_weight=weights" in rec.extra["repro"]
    _assert_reproduces(rec, _execute(rec.extra["repro"], tmp_path))


def _sleep(fw, a, b, o, w):
    import time

    time.sleep(5)
    return a


SLEEPS = Api(
    name="fake.sleeps",
    framework="numpy",
    call=_sleep,
    convention=fakes.EXACT.convention,
    options=fakes.EXACT.options[:1],
    devices=("cpu",),
)


def test_a_timed_out_check_stores_a_snippet(corpus, monkeypatch):
    from conformance import isolation

    monkeypatch.setitem(isolation._settings, "timeout", 0.2)
    monkeypatch.setitem(isolation._settings, "hard", False)
    rec = _run(_check(corpus, "canonical-2x3", SLEEPS, "float64"))
    assert rec.verdict == "timeout"
    assert "from tests.test_repro import SLEEPS as entry" in rec.extra["repro"]
