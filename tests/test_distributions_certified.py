"""Distribution-level expected values carry certified bounds: the closed forms again in arb."""

import math

import mpmath
import numpy as np
import pytest

from conformance import judge
from conformance.distributions import certify, runner
from conformance.distributions import closed_forms as cf
from conformance.distributions.cases import load_cases

pytest.importorskip("flint")

CORPUS = [(case, dtype) for case in load_cases() for dtype in runner.DTYPES if dtype in case.dtypes]


def _truth(case, dtype, index, digits=120):
    """KL at the fed parameters by the same formula in mpmath at `digits`: independent of arb's arithmetic."""
    with mpmath.workdps(digits):
        p = cf.element_params(case.p.family, runner.fed_params(case, "p", dtype), case.batch, index)
        q = cf.element_params(case.q.family, runner.fed_params(case, "q", dtype), case.batch, index)
        terms = cf.kl_terms(case.p.family, p, case.q.family, q)
        return None if any(t == cf.INF for t in terms) else mpmath.fsum(terms)


def test_every_distribution_expectation_in_the_corpus_is_certified_within_a_thousandth_of_its_tolerance():
    for case, dtype in CORPUS:
        exp = runner.expectation(case, dtype)
        assert exp.bound is not None and "arb" in exp.provenance, (case.id, exp.provenance)
        tol = np.broadcast_to(judge.tolerance(exp, dtype, "cpu"), np.shape(exp.value))
        sharp = exp.certified_to(judge.BOUND_SHARE * tol)
        finite = np.isfinite(sharp.value)
        assert np.all(~finite | (sharp.bound <= judge.BOUND_SHARE * tol)), case.id


def test_the_bounds_hold_against_mpmath_at_120_digits():
    """|exact - (value + low)| <= bound, with the exact value from mpmath far beyond float64."""
    checked = 0
    for case, dtype in CORPUS:
        exp = runner.expectation(case, dtype)
        value, low, bound = (np.broadcast_to(a, case.batch) for a in (exp.value, exp.low, exp.bound))
        for index in np.ndindex(*case.batch):
            truth = _truth(case, dtype, index)
            if truth is None:
                assert value[index] == math.inf and bound[index] == 0
                continue
            with mpmath.workdps(120):
                miss = abs(truth - mpmath.mpf(float(value[index])) - mpmath.mpf(float(low[index])))
            assert miss <= bound[index] * (1 + 1e-9) + mpmath.mpf(10) ** -100, (case.id, index, miss, bound[index])
            checked += 1
    assert checked > 150


def test_the_expected_values_stay_those_mpmath_gives():
    for case, dtype in CORPUS:
        exp = runner.expectation(case, dtype)
        p, q = runner.fed_params(case, "p", dtype), runner.fed_params(case, "q", dtype)
        values, _, _ = cf.evaluate(case.p.family, p, case.q.family, q, case.batch)
        assert np.array_equal(np.asarray(exp.value), values, equal_nan=True), case.id


def test_a_loose_first_bound_is_refined_at_higher_precision_before_a_verdict(monkeypatch):
    """Evaluated first at 32 bits (not 128), bounds are far above what the judge asks: refinement must
    raise the precision until each meets a thousandth of its tolerance, leaving the values as they were."""
    monkeypatch.setattr(certify, "FIRST_BITS", 32)
    runner.expectation.cache_clear()
    refined = 0
    try:
        for case, dtype in CORPUS[:40]:
            exp = runner.expectation(case, dtype)
            tol = np.broadcast_to(judge.tolerance(exp, dtype, "cpu"), np.shape(exp.value))
            need = judge.BOUND_SHARE * tol
            finite = np.isfinite(exp.value)
            if not np.any(finite & (exp.bound > need)):
                continue
            sharp = exp.certified_to(need)
            assert np.all(~finite | (sharp.bound <= need)), case.id
            assert "at up to 32 bits" not in sharp.provenance and np.array_equal(sharp.value, exp.value)
            refined += 1
    finally:
        runner.expectation.cache_clear()
    assert refined >= 20


def test_arb_and_mpmath_deciding_differently_leaves_the_value_uncertified(monkeypatch):
    """A formula whose arb evaluation does not hold mpmath's value (here its sums are planted off by 1e-9)
    gets no bound: the record says why, rather than carry a bound that is not one."""
    case, dtype = next((c, d) for c, d in CORPUS if c.id == "normal-far-apart")
    runner.expectation.cache_clear()
    monkeypatch.setattr(certify._Arb, "fsum", staticmethod(lambda terms: sum(terms, certify.arb(1e-9))))
    try:
        exp = runner.expectation(case, dtype)
    finally:
        runner.expectation.cache_clear()
    assert exp.bound is None and "uncertified: element [0]" in exp.provenance
    verdict = judge.judge(exp, np.asarray(exp.value), dtype, "cpu")
    assert verdict.bound is None
