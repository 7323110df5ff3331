"""Declarative properties catch planted violations and pass a correct implementation."""

import numpy as np
import pytest

from conformance import cases, oracle, properties
from tests import fakes


@pytest.fixture(scope="module")
def case():
    return {c.id: c for c in cases.load_cases()}["dirichlet-8x5"]


def run(case, api, prop, dtype="float64"):
    return properties.run_property_check(properties.PropertyCheck(case, api, prop, "cpu", dtype))


@pytest.mark.parametrize("prop", ["self_zero", "non_negative", "reduction_consistency", "permutation_invariance"])
def test_exact_implementation_has_every_property(case, prop):
    rec = run(case, fakes.EXACT, prop)
    assert rec.verdict == "pass", rec.message
    assert rec.check == "property" and rec.options["property"] == prop and rec.check_id.endswith(prop)


@pytest.mark.parametrize(
    "api, prop",
    [
        (fakes.POSITION_DEPENDENT, "permutation_invariance"),
        (fakes.SELF_NONZERO, "self_zero"),
        (fakes.INCONSISTENT_SUM, "reduction_consistency"),
    ],
)
def test_planted_violation_is_caught(case, api, prop):
    rec = run(case, api, prop)
    assert rec.verdict == "fail" and rec.kind == "value", rec.message
    assert rec.tolerance is not None and rec.abs_error > rec.tolerance


def test_properties_are_planned_from_the_case_file(case):
    planned = properties.plan([case], [fakes.EXACT], devices=["cpu"], dtypes=["float32"])
    assert {p.prop for p in planned} == {"self_zero", "non_negative", "reduction_consistency", "permutation_invariance"}


@pytest.mark.parametrize(
    "spec, wrt",
    [
        (oracle.Spec(q_space="log_prob", reduction="mean_batch"), "q"),
        (oracle.Spec(q_space="log_prob", reduction="sum"), "p"),
        (oracle.Spec(reduction="mean_all"), "q"),
        (oracle.Spec(reduction="per_row", elementwise="p*log(p/q)-p+q"), "p"),
        (oracle.Spec(q_space="logits", reduction="mean_batch", batch_divisor="rows"), "q"),
        (oracle.Spec(p_space="log_prob", q_space="log_prob", reduction="sum"), "p"),
    ],
)
def test_analytic_gradient_matches_finite_differences(spec, wrt):
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=3)
    q = rng.dirichlet(np.ones(4), size=3)
    args = {"p": np.log(p) if spec.p_space == "log_prob" else p, "q": np.log(q) if spec.q_space != "prob" else q}
    grad = oracle.gradient(args["p"], args["q"], spec, wrt).value
    h = 1e-7
    numeric = np.zeros_like(grad)
    for i in np.ndindex(grad.shape):
        plus, minus = args[wrt].copy(), args[wrt].copy()
        plus[i] += h
        minus[i] -= h
        f = lambda x: float(np.sum(oracle.expected(*((x, args["q"]) if wrt == "p" else (args["p"], x)), spec).value))
        numeric[i] = (f(plus) - f(minus)) / (2 * h)
    assert np.allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_a_bug_in_a_property_runner_is_a_recorded_error(case, monkeypatch):
    def broken(check):
        raise ZeroDivisionError("planted")

    monkeypatch.setitem(properties._RUNNERS, "self_zero", broken)
    rec = run(case, fakes.EXACT, "self_zero")
    assert rec.verdict == "error" and rec.kind == "internal" and "planted" in rec.message
    assert rec.check == "property" and rec.check_id.endswith("::self_zero")
