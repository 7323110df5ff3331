"""The oracle's bounds hold: every value lies within value + low +- bound of an independent computation
in mpmath at 250 digits (log-softmax written with log1p here), and the bounds are small."""

import math
import os
import subprocess
import sys
import textwrap

import mpmath
import numpy as np
import pytest

from conformance import judge, oracle
from conformance.dtypes import round_to

DPS = 250
TINY32, SUB32 = float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).smallest_subnormal)
TINY64, SUB64 = float(np.finfo(np.float64).tiny), float(np.finfo(np.float64).smallest_subnormal)


def _log_side(row, space):
    """(p, log p) of one row as mpf, NaN/zero handling left to the cases (all inputs here are regular)."""
    x = [mpmath.mpf(float(v)) for v in row]
    if space == "prob":
        return x, [mpmath.log(v) if v > 0 else -mpmath.inf for v in x]
    if space == "log_prob":
        return [mpmath.exp(v) if v != -mpmath.inf else mpmath.mpf(0) for v in x], x
    live = [i for i, v in enumerate(x) if v != -mpmath.inf]
    t = max(live, key=lambda i: (x[i], -i))
    mass = mpmath.fsum(mpmath.exp(x[i] - x[t]) for i in live if i != t)
    lse = mpmath.log1p(mass)
    log = [-mpmath.inf if v == -mpmath.inf else (-lse if i == t else (v - x[t]) - lse) for i, v in enumerate(x)]
    return [mpmath.exp(v) if v != -mpmath.inf else mpmath.mpf(0) for v in log], log


def truth_terms(p, q, p_space="prob", q_space="prob"):
    with mpmath.workdps(DPS):
        out = []
        for prow, qrow in zip(np.reshape(p, (-1, p.shape[-1])), np.reshape(q, (-1, q.shape[-1]))):
            pp, lp = _log_side(prow, p_space)
            _, lq = _log_side(qrow, q_space)
            out.append([mpmath.mpf(0) if a == 0 else a * (la - lb) for a, la, lb in zip(pp, lp, lq)])
        return out


def truth(p, q, spec, weights=None):
    """The exact value of each output element, as mpf at DPS digits."""
    rows = truth_terms(p, q, spec.p_space, spec.q_space)
    with mpmath.workdps(DPS):
        if spec.reduction == "none":
            return np.array([v for row in rows for v in row], dtype=object).reshape(p.shape)
        w = [mpmath.mpf(1)] * len(rows) if weights is None else [mpmath.mpf(float(v)) for v in np.ravel(weights)]
        per_row = [wi * mpmath.fsum(row) for wi, row in zip(w, rows)]
        if spec.reduction == "per_row":
            return np.array(per_row, dtype=object).reshape(p.shape[:-1])
        divisor = {"sum": 1, "mean_all": p.size, "mean_batch": p.shape[0], "mean_weighted": mpmath.fsum(w)}
        return np.array(mpmath.fsum(per_row) / divisor[spec.reduction], dtype=object)


def misses(exp, want) -> list:
    """Elements where the truth lies outside value + low +- bound (empty: the bound holds)."""
    bad = []
    value, low, bound = (np.broadcast_to(a, np.shape(exp.value)) for a in (exp.value, exp.low, exp.bound))
    with mpmath.workdps(DPS):
        for index in np.ndindex(*np.shape(exp.value)):
            error = abs(mpmath.mpf(float(value[index])) + mpmath.mpf(float(low[index])) - want[index])
            if not error <= mpmath.mpf(float(bound[index])):
                bad.append((index, float(error), float(bound[index])))
    return bad


def assert_certified(p, q, spec, weights=None, relative=1e-25):
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    exp = oracle.expected(p, q, spec, weights)
    want = truth(p, q, spec, weights)
    assert misses(exp, want) == []
    scale = np.asarray(exp.magnitude) + np.abs(exp.value)
    assert np.all(np.asarray(exp.bound) <= relative * scale + 1e-300), (exp.bound, scale)
    return exp, want


LOGIT_ROWS = [
    ([0.0, 100.0], [0.0, 101.0]),
    ([0.0, 200.0], [0.0, 201.0]),
    ([0.0, 700.0], [0.0, 701.0]),
    ([0.0, 0.0, 745.0], [1e-3, -800.0, 300.0]),
    ([-300.0, 400.0, 399.5, -1e4], [5.0, -5.0, 650.0, 649.0]),
]


@pytest.mark.parametrize("p_row, q_row", LOGIT_ROWS)
def test_logits_hundreds_apart(p_row, q_row):
    p, q = np.array([p_row]), np.array([q_row])
    spec = oracle.Spec(p_space="logits", q_space="logits")
    exp, want = assert_certified(p, q, spec)
    # the value is right to the last bit, not only within tolerance: nearest float64 of the truth
    assert abs(float(exp.value[0]) - float(want[0])) <= 0.5 * math.ulp(float(want[0])) + SUB64


def test_a_dominant_class_keeps_its_tiny_log_probability():
    p = np.array([[0.0, 200.0]])
    log = oracle.to_space(p, "logits", "log_prob")
    assert log[0, 1] < 0 and math.isclose(log[0, 1], -math.exp(-200.0), rel_tol=1e-15)
    assert math.isclose(log[0, 0], -200.0 - math.exp(-200.0), rel_tol=1e-15)


def test_logits_against_probabilities_with_mixed_rows():
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=300.0, size=(4, 9))
    prob = rng.random((4, 9))
    prob /= prob.sum(axis=-1, keepdims=True)
    for spec in (oracle.Spec(q_space="logits"), oracle.Spec(p_space="logits", reduction="none")):
        assert_certified(prob if spec.p_space == "prob" else logits, logits if spec.p_space == "prob" else prob, spec)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_masses_near_the_smallest_normal_and_subnormal(dtype):
    tiny, sub = (TINY32, SUB32) if dtype == "float32" else (TINY64, SUB64)
    p = np.array([[tiny, sub, 3 * sub, 0.5, 0.5 - tiny], [sub, tiny, 0.25, 0.25, 0.5]])
    q = np.array([[sub, tiny, 0.5, 2 * sub, 0.5], [0.5, 0.25, tiny, sub, 0.25]])
    for reduction in ("none", "per_row", "sum", "mean_batch"):
        assert_certified(p, q, oracle.Spec(reduction=reduction))
    log_p = np.log(np.where(p > 0, p, 1.0))
    assert_certified(log_p, q, oracle.Spec(p_space="log_prob", reduction="none"))


def test_log_probabilities_below_float64_range():
    p = np.array([[-800.0, -1e4, 0.0, -1e-300]])
    q = np.array([[-750.0, -2e4, -1e-20, -1e-300]])
    exp, _ = assert_certified(p, q, oracle.Spec(p_space="log_prob", q_space="log_prob", reduction="none"))
    assert exp.value[0, 1] == 0 and exp.value[0, 2] != 0


@pytest.mark.parametrize("zero_p, zero_both", [("0", "0"), ("nan", "nan")])
def test_zeros_of_either_sign(zero_p, zero_both):
    p = np.array([[0.0, -0.0, -0.0, 0.5, 0.5]])
    q = np.array([[-0.0, 0.0, 0.5, 0.25, 0.25]])
    exp = oracle.expected(p, q, oracle.Spec(reduction="none", zero_p=zero_p, zero_both=zero_both))
    nan = zero_p == "nan"
    assert np.isnan(exp.value[0, 0]) == nan and np.isnan(exp.value[0, 1]) == nan and np.isnan(exp.value[0, 2]) == nan
    if not nan:
        assert exp.value[0, 0] == 0 and exp.value[0, 1] == 0 and exp.value[0, 2] == 0
    assert np.all(np.asarray(exp.bound)[0, :3] == 0)  # decided exactly
    want = truth(p[:, 3:], q[:, 3:], oracle.Spec(reduction="none"))
    tail = oracle.Expectation(exp.value[:, 3:], exp.magnitude[:, 3:], 1, 0.0, exp.low[:, 3:], exp.bound[:, 3:])
    assert misses(tail, want) == []
    logits = np.array([[-np.inf, 0.0, 3.0]])
    lz = oracle.expected(logits, np.array([[0.0, -0.0, 1.0]]), oracle.Spec(p_space="logits", reduction="none"))
    assert lz.value[0, 0] == 0 and lz.bound[0, 0] == 0


def test_weighted_reductions():
    rng = np.random.default_rng(5)
    p = round_to(rng.dirichlet(np.ones(7), size=3), "float32").astype(np.float64)
    q = round_to(rng.dirichlet(np.ones(7), size=3), "float32").astype(np.float64)
    w = np.array([0.5, 3.0, 1e-3])
    for reduction in ("per_row", "sum", "mean_weighted"):
        assert_certified(p, q, oracle.Spec(reduction=reduction), w)


def test_a_huge_class_count():
    rng = np.random.default_rng(7)
    n = 20_000
    p = round_to(rng.dirichlet(np.full(n, 0.3))[None], "float32").astype(np.float64)
    q = round_to(rng.dirichlet(np.full(n, 0.3))[None], "float32").astype(np.float64)
    q = np.where(q > 0, q, SUB32)
    assert_certified(p, q, oracle.Spec(reduction="sum"))


def test_a_planted_wrong_value_or_bound_is_caught():
    p, q = np.array([[0.0, 200.0]]), np.array([[0.0, 201.0]])
    spec = oracle.Spec(p_space="logits", q_space="logits")
    exp = oracle.expected(p, q, spec)
    want = truth(p, q, spec)
    assert misses(exp, want) == []
    shifted = oracle.Expectation(exp.value * (1 + 1e-15), exp.magnitude, exp.terms, 0.0, exp.low, exp.bound)
    assert misses(shifted, want)
    too_tight = oracle.Expectation(exp.value, exp.magnitude, exp.terms, 0.0, exp.low + 3 * exp.bound, exp.bound)
    assert misses(too_tight, want)
    # the old oracle's answer for this row (wrong by a factor of e) is caught too
    old = oracle.Expectation(exp.value * math.e, exp.magnitude, exp.terms, 0.0, exp.low * math.e, exp.bound)
    assert misses(old, want)


def test_refinement_meets_a_requested_bound_in_arb():
    p, q = np.array([[0.2, 0.3, 0.5]]), np.array([[0.1, 0.6, 0.3]])
    spec = oracle.Spec(reduction="none")
    exp = oracle.expected(p, q, spec)
    sharp = oracle.expected(p, q, spec, bound_at_most=1e-33)
    assert np.all(sharp.bound <= 1e-33) and np.all(exp.bound > 1e-33)
    assert "arb" in sharp.provenance and "arb" not in exp.provenance
    assert misses(sharp, truth(p, q, spec)) == []


@pytest.mark.parametrize(
    "space, wrt", [("prob", "q"), ("prob", "p"), ("log_prob", "q"), ("log_prob", "p"), ("logits", "q")]
)
def test_gradients_are_certified(space, wrt):
    rng = np.random.default_rng(11)
    prob = rng.dirichlet(np.ones(5), size=2)
    prob[0, 1] = TINY64
    other = rng.dirichlet(np.ones(5), size=2)
    fed = {"prob": other, "log_prob": np.log(other), "logits": np.log(other) * 250}[space]
    p, q = (fed, prob) if wrt == "p" else (prob, fed)
    spec = oracle.Spec(
        p_space=space if wrt == "p" else "prob", q_space=space if wrt == "q" else "prob", reduction="mean_batch"
    )
    g = oracle.gradient(p, q, spec, wrt)
    want = _gradient_truth(p, q, spec, wrt)
    assert misses(g.expectation(), want) == []
    assert np.all(g.bound <= 1e-25 * (np.abs(g.value) + g.magnitude) + 1e-300)


def _gradient_truth(p, q, spec, wrt):
    with mpmath.workdps(DPS):
        out = []
        for prow, qrow in zip(p, q):
            pp, lp = _log_side(prow, spec.p_space)
            qq, lq = _log_side(qrow, spec.q_space)
            space = spec.p_space if wrt == "p" else spec.q_space
            for j in range(len(prow)):
                if space == "logits":
                    g = qq[j] * mpmath.fsum(pp) - pp[j]
                elif wrt == "q":
                    g = -pp[j] / qq[j] if space == "prob" else -pp[j]
                else:
                    g = lp[j] - lq[j] + 1 if space == "prob" else pp[j] * (lp[j] - lq[j] + 1)
                out.append(g / p.shape[0])
        return np.array(out, dtype=object).reshape(p.shape)


# --------------------------------------------------------------------------- the judge


def test_the_judge_gives_no_verdict_with_a_bound_above_a_thousandth_of_its_tolerance():
    p, q = np.array([[0.0, 700.0, -5.0]]), np.array([[0.0, 701.0, 3.0]])
    spec = oracle.Spec(p_space="logits", q_space="logits", reduction="none")
    exp = oracle.expected(p, q, spec)
    tol = judge.tolerance(exp, "float64", "cpu")
    verdict = judge.judge(exp, exp.value, "float64", "cpu")
    assert verdict.verdict == "pass" and verdict.bound is not None
    sharp = exp.certified_to(judge.BOUND_SHARE * tol)
    assert np.all((sharp.bound <= judge.BOUND_SHARE * tol) | (sharp.bound <= SUB64))
    assert verdict.bound in np.ravel(sharp.bound).tolist() and "double-word" in verdict.certified
    assert verdict.details["largest_bound"] == float(np.max(sharp.bound))


def test_the_judge_refines_a_loose_expectation_before_its_verdict():
    truth_value = np.array([1.0, 2.0])
    calls = []

    def refine(need):
        calls.append(need)
        return oracle.Expectation(truth_value, np.ones(2), 1, 0.0, np.zeros(2), np.full(2, 1e-40), "sharp")

    loose = oracle.Expectation(truth_value + 1e-9, np.ones(2), 1, 0.0, np.zeros(2), np.full(2, 1e-8), "rough", refine)
    verdict = judge.judge(loose, truth_value, "float64", "cpu")
    assert calls and np.all(calls[0] <= 1e-3 * judge.tolerance(loose, "float64", "cpu"))
    assert verdict.verdict == "pass" and verdict.bound == 1e-40 and verdict.certified == "sharp"
    # without the refinement, the rough value would have failed the same observation
    rough = oracle.Expectation(truth_value + 1e-9, np.ones(2), 1, 0.0, np.zeros(2), None)
    assert judge.judge(rough, truth_value, "float64", "cpu").verdict == "fail"


def test_the_judge_measures_from_value_plus_low():
    tol = float(judge.tolerance(oracle.Expectation(np.array(1.0), np.array(1.0), 1), "float64", "cpu"))
    planted = oracle.Expectation(np.array(1.0), np.array(1.0), 1, 0.0, np.array(3 * tol), np.array(0.0))
    assert judge.judge(planted, np.array(1.0), "float64", "cpu").verdict == "fail"
    assert judge.judge(planted, np.array(1.0 + 3 * tol), "float64", "cpu").verdict == "pass"


def test_without_python_flint_the_bounds_stand_and_refinement_says_it_is_unavailable():
    """A GPU image may lack python-flint: the tables come from mpmath and the double-word bounds stand."""
    script = textwrap.dedent("""
        import sys
        sys.modules["flint"] = None  # import flint now fails
        import numpy as np
        from conformance import oracle
        p, q = np.array([[0.0, 200.0]]), np.array([[0.0, 201.0]])
        exp = oracle.expected(p, q, oracle.Spec(p_space="logits", q_space="logits"))
        sharp = exp.certified_to(np.zeros(1))
        print(repr(float(exp.value[0])), repr(float(exp.low[0])), float(exp.bound[0]), sharp.provenance)
    """)
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "KLCONF_CACHE_DIR": "off"},
    ).stdout.split("\n")
    value, low, bound, *rest = out[0].split(" ")
    spec = oracle.Spec(p_space="logits", q_space="logits")
    here = oracle.expected(np.array([[0.0, 200.0]]), np.array([[0.0, 201.0]]), spec)
    assert float(value) == here.value[0] and float(low) == here.low[0]  # the same tables, to the last bit
    assert 0 < float(bound) < 1e-100 and "python-flint is not installed" in " ".join(rest)


def test_equal_arguments_give_exact_zero_terms():
    p = np.array([[0.2, 0.3, 0.5]])
    for spec in (
        oracle.Spec(reduction="none"),
        oracle.Spec(reduction="none", elementwise="p*log(p/q)-p+q"),
        oracle.Spec(p_space="log_prob", q_space="log_prob", reduction="none"),
    ):
        exp = oracle.expected(p, p, spec)
        assert np.all(exp.value == 0) and np.all(exp.bound == 0)
    shifted = oracle.expected(p, p, oracle.Spec(p_space="logits", q_space="logits", reduction="none"))
    assert np.all(np.abs(shifted.value) <= shifted.bound)  # logits: decided by arithmetic, within its bound


@pytest.mark.parametrize("case_id", ["dirichlet-8x5", "extreme-logits"])
def test_a_record_carries_the_bound_its_verdict_was_given_with(case_id):
    from conformance import cases, conventions, runner
    from tests import fakes

    case = {c.id: c for c in cases.load_cases()}[case_id]
    for dtype in ("float32", "float64"):
        check = runner.Check(case, fakes.EXACT, (("reduction", "none"),), "cpu", dtype)
        rec = runner.run_check(check)
        assert rec.expected_bound is not None and "double-word" in rec.expected_certified
        assert rec.to_json()["expected_bound"] == rec.expected_bound
        conv = runner.declared(check)
        exp = conventions.expectation(conv, runner.fed_arguments(case, conv, dtype))
        tol = np.broadcast_to(judge.tolerance(exp, dtype, "cpu"), exp.value.shape)
        judged = exp.certified_to(judge.BOUND_SHARE * tol)
        finite = np.isfinite(judged.value)
        # each element's bound is at most a thousandth of its tolerance, or float64's floor
        assert np.all((judged.bound <= judge.BOUND_SHARE * tol) | (judged.bound <= SUB64) | ~finite)
        assert rec.expected_bound in set(np.ravel(judged.bound).tolist())
        if rec.tolerance is not None:
            assert rec.expected_bound <= max(judge.BOUND_SHARE * rec.tolerance, SUB64)


def test_a_broadcast_input_collects_a_certified_gradient():
    p = np.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8], [TINY64, 0.5, 0.5 - TINY64]])
    q = np.broadcast_to(np.array([[0.25, 0.25, 0.5]]), p.shape)
    spec = oracle.Spec(reduction="mean_batch")
    summed = oracle.gradient(p, q, spec, "q").summed_to((1, 3))
    with mpmath.workdps(DPS):
        want = _gradient_truth(p, np.asarray(q), spec, "q").sum(axis=0, keepdims=True)
    assert summed.value.shape == (1, 3) and misses(summed.expectation(), want) == []
    assert np.all(summed.bound <= 1e-28 * np.abs(summed.value))
    # refinement recomputes the elements in arb; the double-word sum after it keeps ~2^-98
    sharp = summed.expectation().certified_to(np.full((1, 3), 1e-35))
    assert "arb" in sharp.provenance and np.all(sharp.bound <= summed.bound) and misses(sharp, want) == []


def test_blockwise_arithmetic_gives_the_whole_arrays_values_and_bounds_bit_for_bit(monkeypatch):
    """Large operations run in blocks (doubleword.BLOCK) for speed; being elementwise, every element's value
    and bound must be what one whole-array call gives, specials, subnormals, overflow and broadcasting too."""
    from conformance.oracle import doubleword as dw

    rng = np.random.default_rng(7)
    n = 1000
    specials = [0.0, -0.0, np.inf, -np.inf, SUB64, TINY64, 800.0, -800.0, 1e300, -1e300, 709.9]
    # (NaN is no input of exp: callers mask it, doubleword's contract; the other operations meet it in y)
    x_hi = np.where(rng.random(n) < 0.2, rng.choice(specials, n), rng.uniform(-50, 50, n))
    x = dw.Dw(x_hi, rng.uniform(-1e-20, 1e-20, n) * (np.abs(x_hi) < 100), rng.choice([0.0, 1e-40, 1e-3], n))
    y_hi = np.where(rng.random(n) < 0.2, rng.choice(specials + [np.nan], n), rng.uniform(1e-300, 2.0, n))
    y = dw.Dw(y_hi, np.zeros(n), rng.choice([0.0, 1e-35], n))
    finite_y = dw.Dw(np.where(np.isfinite(y.hi), y.hi, 1.0), y.lo, y.err)  # log's inputs are finite
    row = dw.Dw(*(a.reshape(1, n)[:, :40] for a in y))  # broadcast against a (25, 40) block
    grid = dw.Dw(*(a.reshape(25, 40) for a in x))
    operations = {
        "exp": lambda: dw.exp(x),
        "log": lambda: dw.log(finite_y),
        "log1p": lambda: dw.log1p(dw.Dw(np.abs(finite_y.hi), y.lo, y.err)),
        "mul": lambda: dw.mul(x, y),
        "add": lambda: dw.add(x, y),
        "div": lambda: dw.div(x, y),
        "broadcast mul": lambda: dw.mul(grid, row),
    }
    with np.errstate(all="ignore"):
        monkeypatch.setattr(dw, "BLOCK", 10**9)
        whole = {name: run() for name, run in operations.items()}
        monkeypatch.setattr(dw, "BLOCK", 7)  # blocks that do not divide the size
        for name, run in operations.items():
            blocked = run()
            for part, got, want in zip(("hi", "lo", "err"), blocked, whole[name]):
                assert got.shape == want.shape, f"{name}: {part}.shape={got.shape}, but should be {want.shape}"
                assert np.array_equal(got, want, equal_nan=True), f"{name}: {part} differs in blocks"
                assert np.array_equal(np.signbit(got), np.signbit(want)), f"{name}: {part} zero signs differ"


# --------------------------------------------------------------------------- float64's own floor

TINY_P = np.array([[TINY64, SUB64, 1.0]])  # the corpus's tiny-probs-float64: smallest normal and subnormal
TINY_Q = np.array([[0.5, SUB64, 0.5]])


def _log(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(x)


@pytest.mark.parametrize(
    ("name", "make"),
    [
        # an empty batch's sum is exactly 0
        ("empty sum", lambda: oracle.expected(np.zeros((0, 4)), np.zeros((0, 4)), oracle.Spec(reduction="sum"))),
        # d/d(log q) of p log(p/q) is -p: exactly 0 where p is, however inexact the divisor (3 rows)
        (
            "zeros over a batch of 3",
            lambda: oracle.gradient(
                np.array([[0.0, 1.0], [0.5, 0.5], [0.0, 1.0]]),
                _log(np.array([[0.5, 0.5], [0.25, 0.75], [1.0, 0.0]])),
                oracle.Spec(q_space="log_prob", reduction="mean_batch"),
                "q",
            ).expectation(),
        ),
        # derivatives at the subnormal floor, unscaled and over a divisor of 3
        (
            "subnormal, unscaled",
            lambda: oracle.gradient(
                TINY_P, _log(TINY_Q), oracle.Spec(q_space="log_prob", reduction="none"), "q"
            ).expectation(),
        ),
        (
            "subnormal log target, mean over 3",
            lambda: oracle.gradient(
                _log(TINY_P),
                _log(TINY_Q),
                oracle.Spec(p_space="log_prob", q_space="log_prob", reduction="mean_all"),
                "p",
            ).expectation(),
        ),
    ],
)
def test_bounds_reach_float64s_own_floor_and_exact_results_are_exact(name, make):
    """Before a verdict every bound is certified to a thousandth of its tolerance. Near zero that is below
    float64's resolution: value + low can then miss the exact value by half a subnormal, so one subnormal
    is the floor, and an exact result (a zero) must come out with bound 0, not a padded few subnormals."""
    exp = make()
    tol = np.broadcast_to(judge.tolerance(exp, "float64", "cpu"), np.shape(exp.value))
    sharp = exp.certified_to(judge.BOUND_SHARE * tol)
    bound = np.broadcast_to(sharp.bound, np.shape(exp.value))
    assert np.all((bound <= judge.BOUND_SHARE * tol) | (bound <= SUB64)), (name, bound, tol)
    if not name.startswith("subnormal"):  # (there a derivative below half a subnormal also reads 0)
        exact = np.asarray(sharp.value) == 0
        assert exact.any() and np.all(bound[exact] == 0), (name, bound)
    verdict = judge.judge(exp, np.asarray(sharp.value), "float64", "cpu")
    assert verdict.verdict == "pass" and verdict.bound is not None
    assert verdict.bound <= max(judge.BOUND_SHARE * (verdict.tolerance or 0.0), SUB64)


def test_a_shape_failure_still_records_the_expected_values_bound():
    exp = oracle.expected(np.array([[0.5, 0.5]]), np.array([[0.25, 0.75]]), oracle.Spec(reduction="sum"))
    verdict = judge.judge(exp, np.zeros(3), "float64", "cpu")
    assert verdict.verdict == "fail" and verdict.kind == "shape"
    tol = float(judge.tolerance(exp, "float64", "cpu"))
    assert verdict.bound is not None and 0 < verdict.bound <= judge.BOUND_SHARE * tol
    assert "double-word" in verdict.certified


@pytest.mark.parametrize("shape", [(3,), (2, 3), (2, 2, 3), (0, 3), (4, 1)])
@pytest.mark.parametrize("reduction", oracle.REDUCTIONS)
def test_the_output_shape_is_known_before_evaluation(shape, reduction):
    """A diagnosis skips conventions whose values could not match the observation's shape; the skip is
    only sound if `output_shape` is the shape `expected` returns, for every reduction and batch shape."""
    rng = np.random.default_rng(len(shape) * 10 + shape[-1])
    p, q = rng.dirichlet(np.ones(shape[-1]), shape[:-1]), rng.dirichlet(np.ones(shape[-1]), shape[:-1])
    spec = oracle.Spec(reduction=reduction)
    weights = np.ones(shape[:-1]) if reduction == "mean_weighted" else None
    assert oracle.output_shape(shape, spec) == np.shape(oracle.expected(p, q, spec, weights).value)


def test_a_derivative_beyond_float64_is_infinite_and_certified():
    """d/dq of p log(p/q) is -p/q: at a subnormal q it is about -1e323, beyond float64, so exactly -inf as
    float64 holds it. The double-word stage cannot bound the overflow; arb must decide it, scaled or not."""
    p, q = np.array([[0.5, 0.5]]), np.array([[1.0, SUB64]])
    for reduction in ("none", "mean_all"):
        exp = oracle.gradient(p, q, oracle.Spec(reduction=reduction), "q").expectation()
        sharp = exp.certified_to(np.full(p.shape, 1e-300))
        assert sharp.value[0, 1] == -np.inf and sharp.bound[0, 1] == 0, (reduction, sharp.value, sharp.bound)
        assert np.isfinite(sharp.value[0, 0]) and sharp.bound[0, 0] <= 1e-300


def test_a_record_says_which_elements_float64s_floor_kept_above_the_share():
    """An element whose exact value float64 cannot pin to a thousandth of its tolerance is counted in its
    record, with how many such elements the exact value could have moved across the tolerance; a record
    without such elements has no entry. The corpus reaches this floor: extreme-logits' derivatives with
    respect to log Q are q - p, and where p = 0 that is e^-10000 or so, below every float64, with a
    tolerance of about one subnormal (so a thousandth of it rounds to 0)."""
    from conformance import results

    def recorded(exp, observed):
        rec = results.Record("c", "c", "h", "api", "fw", "cpu", "float64", {}, "pass")
        rec.take_judgement(judge.judge(exp, observed, "float64", "cpu"), observed, exp.value)
        assert results.schema_errors(rec.to_json()) == []
        return rec

    p = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # extreme-logits' P, fed as probabilities
    log_q = np.array([[-20000.0, -10000.0, 0.0], [-9999.0, 0.0, -9999.0]])  # and Q as log-probabilities
    spec = oracle.Spec(q_space="log_prob", elementwise="p*log(p/q)-p+q", reduction="per_row")
    corpus = oracle.gradient(p, log_q, spec, "q").expectation()
    rec = recorded(corpus, np.asarray(corpus.value))
    assert rec.verdict == "pass" and rec.extra["bound_floor"] == {"elements": 3, "uncertain": 0}

    # at the floor by construction: bound one subnormal, tolerance one subnormal
    value = np.array([3 * SUB64, 0.25])
    floor = oracle.Expectation(value, np.zeros(2), 1, 0.0, np.zeros(2), np.array([SUB64, 0.0]), "test floor")
    tol = judge.tolerance(floor, "float64", "cpu")
    assert judge.BOUND_SHARE * tol[0] < SUB64 <= tol[0]  # the share is below what float64 resolves there

    rec = recorded(floor, value)
    assert rec.verdict == "pass" and rec.extra["bound_floor"] == {"elements": 1, "uncertain": 0}
    assert rec.expected_bound == SUB64 and rec.expected_certified == "test floor"
    # off by its tolerance to the subnormal: the exact value, within a subnormal, decides, so it is uncertain
    off = value + np.array([float(tol[0]), 0.0])
    assert recorded(floor, off).extra["bound_floor"] == {"elements": 1, "uncertain": 1}

    p, q = np.array([[0.0, 700.0, -5.0]]), np.array([[0.0, 701.0, 3.0]])
    plain = oracle.expected(p, q, oracle.Spec(p_space="logits", q_space="logits", reduction="none"))
    assert "bound_floor" not in recorded(plain, np.asarray(plain.value)).extra


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("space", ["prob", "log_prob"])
def test_a_large_side_in_few_bits_is_computed_per_distinct_value_with_the_same_bits(monkeypatch, dtype, space):
    """A side fed in float16 or bfloat16 takes few distinct values, and is computed once per value: every
    expected value, bound and gradient is bit for bit the one computed element by element, zeros of either
    sign, NaN, infinities and subnormals included."""
    rng = np.random.default_rng(7)
    shape = (2, 3 * oracle.DISTINCT_MIN)
    p = rng.dirichlet(np.ones(shape[1]), size=2)
    q = rng.dirichlet(np.ones(shape[1]) * 0.3, size=2)
    for x in (p, q):
        x[:, :8] = [0.0, -0.0, np.nan, np.inf, 6e-8, 1e-300, 1.0, -1.0]
    if space == "log_prob":
        with np.errstate(divide="ignore", invalid="ignore"):
            p, q = np.log(np.abs(p)), np.log(q)
        p[:, 1], q[:, 2] = -0.0, -np.inf
    p, q = round_to(p, dtype), round_to(q, dtype)
    specs = [oracle.Spec(p_space=space, q_space=space, reduction=r) for r in ("none", "per_row", "mean_all")]
    specs.append(oracle.Spec(p_space=space, q_space=space, clip_epsilon=1e-7, elementwise="p*log(p/q)-p+q"))

    def everything():
        oracle._SIDES._items.clear()
        oracle._TERMS._items.clear()
        oracle._GRADIENTS._items.clear()
        oracle._RESULTS._memory.clear()
        found = []
        for spec in specs:
            e = oracle.expected(p, q, spec)
            found += [e.value, e.low, e.bound, e.magnitude]
            if spec.reduction != "none":
                g = oracle.gradient(p, q, spec, "q")
                found += [g.value, g.low, g.bound]
        return found

    monkeypatch.setenv("KLCONF_CACHE_DIR", "off")
    assert oracle._distinct(np.asarray(p, np.float64), space, False) is not None  # the path under test is taken
    by_value = everything()
    monkeypatch.setattr(oracle, "DISTINCT_MIN", 10**12)
    assert oracle._distinct(np.asarray(p, np.float64), space, False) is None
    in_place = everything()
    for a, b in zip(by_value, in_place):
        np.testing.assert_array_equal(
            np.asarray(a).view(np.uint64) if np.ndim(a) else a, np.asarray(b).view(np.uint64) if np.ndim(b) else b
        )
