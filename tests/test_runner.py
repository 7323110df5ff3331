"""The runner and judge catch planted bugs and name the convention that explains them."""

import numpy as np
import pytest

from conformance import cases, runner
from tests import fakes


@pytest.fixture(scope="module")
def corpus():
    return {c.id: c for c in cases.load_cases()}


def _run(case, api, dtype="float64", **options):
    opts = options or api.options[0]
    return runner.run_check(runner.Check(case, api, tuple(opts.items()), "cpu", dtype))


@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "batchmean"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_exact_implementation_passes(corpus, reduction, dtype):
    rec = _run(corpus["dirichlet-8x5"], fakes.EXACT, dtype, reduction=reduction)
    assert rec.verdict == "pass", rec.message
    assert rec.headroom is not None and rec.headroom < 1
    assert rec.abs_error is not None and rec.tolerance > 0


@pytest.mark.parametrize("reduction", ["sum", "batchmean", "none"])
def test_kl_times_1_001_is_caught(corpus, reduction):
    rec = _run(corpus["dirichlet-8x5"], fakes.SCALED, "float32", reduction=reduction)
    assert rec.verdict == "fail" and rec.kind == "value"
    assert "ratio observed/expected 1.001" in rec.message


def test_wrong_reduction_is_caught_and_named(corpus):
    rec = _run(corpus["dirichlet-8x5"], fakes.WRONG_REDUCTION, "float64", reduction="batchmean")
    assert rec.verdict == "fail"
    assert "reduction=mean_all (declared mean_batch)" in rec.diagnosis


def test_api_that_raises_is_an_error_record(corpus):
    def boom(fw, a, b, o, w):
        raise RuntimeError("kernel exploded")

    api = fakes.Api(
        name="fake.raises",
        framework="numpy",
        call=boom,
        convention=fakes.EXACT.convention,
        options=fakes.EXACT.options[:1],
        devices=("cpu",),
    )
    rec = _run(corpus["canonical-2x3"], api)
    assert rec.verdict == "error" and rec.kind == "exception"
    assert "RuntimeError: kernel exploded" in rec.message


def test_unsupported_dtype_and_missing_module_are_not_errors(corpus):
    rec = _run(corpus["canonical-2x3"], fakes.EXACT, "bfloat16")
    assert rec.verdict == "unsupported" and "bfloat16" in rec.reason
    missing = fakes.Api(
        name="fake.needs_module",
        framework="numpy",
        call=fakes.EXACT.call,
        convention=fakes.EXACT.convention,
        options=fakes.EXACT.options[:1],
        requires=("klconf_no_such_module",),
    )
    rec = _run(corpus["canonical-2x3"], missing)
    assert rec.verdict == "skip" and "klconf_no_such_module is not installed" in rec.reason


def test_missing_framework_is_a_skip_with_reason(corpus, monkeypatch):
    from conformance.frameworks import binding

    monkeypatch.setattr(binding("torch"), "modules", ("klconf_torch_not_here",))
    from conformance.frameworks import torch as torch_adapter

    rec = _run(corpus["canonical-2x3"], torch_adapter.APIS[0], "float32")
    assert rec.verdict == "skip" and "not installed" in rec.reason


def test_a_value_beyond_the_dtype_range_is_correctly_infinite():
    from conformance import judge, oracle

    exp = oracle.Expectation(np.array([-1.0e5, 70000.0, 65519.0]), np.array([1e5, 7e4, 6.5e4]), 1)
    got = judge.judge(exp, np.array([-np.inf, np.inf, 65504.0]), "float16", "cpu")
    assert got.verdict == "pass", got.message
    assert judge.judge(exp, np.array([-np.inf, np.inf, np.inf]), "float16", "cpu").verdict == "fail"
    wider = judge.judge(exp, np.array([-1.0e5, 70000.0, 65519.0]), "float16", "cpu", output_dtype="float32")
    assert wider.verdict == "pass"
