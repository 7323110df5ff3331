"""The oracle: exact values from the fed bits, under each convention."""

import math

import mpmath
import numpy as np
import pytest

from conformance import oracle
from conformance.dtypes import FORMATS, round_to

P = np.array([[0.2, 0.3, 0.5], [0.0, 0.4, 0.6]])
Q = np.array([[0.1, 0.6, 0.3], [0.25, 0.25, 0.5]])


def exact_row(p, q):
    with mpmath.workdps(60):
        return float(mpmath.fsum(mpmath.mpf(a) * mpmath.log(mpmath.mpf(a) / mpmath.mpf(b)) for a, b in zip(p, q) if a))


def test_per_row_matches_an_independent_mpmath_sum():
    got = oracle.kl_per_row(P, "probs", Q, "probs")
    assert got.tolist() == [exact_row(P[0], Q[0]), exact_row(P[1], Q[1])]


@pytest.mark.parametrize("reduction, divisor", [("sum", 1), ("mean_all", 6), ("mean_batch", 2)])
def test_reductions(reduction, divisor):
    total = exact_row(P[0], Q[0]) + exact_row(P[1], Q[1])
    got = oracle.expected(P, Q, oracle.Spec(reduction=reduction)).value
    assert got.shape == () and math.isclose(float(got), total / divisor, rel_tol=1e-15)


def test_batch_divisors_for_1d_and_3d_inputs():
    p1, q1 = P[0], Q[0]
    kl = exact_row(p1, q1)
    for divisor, want in (("dim0", kl / 3), ("rows", kl), ("batch", kl)):
        assert math.isclose(
            float(oracle.expected(p1, q1, oracle.Spec(reduction="mean_batch", batch_divisor=divisor)).value), want
        )
    p3, q3 = np.stack([P, P, P]), np.stack([Q, Q, Q])  # (3, 2, 3): batch 3, time 2
    total = 3 * (exact_row(P[0], Q[0]) + exact_row(P[1], Q[1]))
    for divisor, n in (("dim0", 3), ("rows", 6), ("batch", 3)):
        got = float(oracle.expected(p3, q3, oracle.Spec(reduction="mean_batch", batch_divisor=divisor)).value)
        assert math.isclose(got, total / n, rel_tol=1e-15)


def test_log_space_and_logits_inputs_are_read_exactly():
    log_q = np.log(Q)  # float64 logs: the oracle must use exp(fed), not Q
    got = oracle.expected(P, log_q, oracle.Spec(q_space="log_prob")).value
    with mpmath.workdps(60):
        want = [
            float(mpmath.fsum(mpmath.mpf(a) * (mpmath.log(a) - mpmath.mpf(lb)) for a, lb in zip(pr, lq) if a))
            for pr, lq in zip(P, log_q)
        ]
    assert got.tolist() == want
    logits = np.log(Q) + 3.0  # shifted logits: same distribution
    assert np.allclose(oracle.expected(P, logits, oracle.Spec(q_space="logits")).value, want, rtol=1e-15, atol=0)


def test_zero_conventions_and_generalized_terms():
    p = np.array([[0.0, 0.0, 1.0, 0.5]])
    q = np.array([[0.5, 0.0, 0.0, 0.5]])
    math_terms = oracle.expected(p, q, oracle.Spec(reduction="none")).value[0]
    assert math_terms[0] == 0 and math_terms[1] == 0 and math_terms[2] == np.inf and math_terms[3] == 0
    torch_like = oracle.expected(p, q, oracle.Spec(reduction="none", zero_both="nan")).value[0]
    assert np.isnan(torch_like[1]) and torch_like[0] == 0
    generalized = oracle.expected(p, q, oracle.Spec(reduction="none", elementwise="p*log(p/q)-p+q")).value[0]
    assert generalized[0] == 0.5 and generalized[1] == 0 and generalized[2] == np.inf


def test_out_of_domain_inputs_are_undefined():
    p = np.array([[-0.1, np.nan, 0.5]])
    q = np.array([[0.5, 0.5, -0.5]])
    assert np.isnan(oracle.expected(p, q, oracle.Spec(reduction="none")).value).all()


def test_clipping_and_normalisation():
    p = np.array([[0.0, 0.5, 0.5]])
    q = np.array([[0.5, 0.5, 0.0]])
    eps = 1e-7
    got = float(oracle.expected(p, q, oracle.Spec(clip_epsilon=eps)).value[0])
    want = eps * math.log(eps / 0.5) + 0.5 * math.log(0.5 / eps)
    assert math.isclose(got, want, rel_tol=1e-14)
    unnormalized = np.array([[2.0, 6.0]]), np.array([[1.0, 1.0]])
    got = float(oracle.expected(*unnormalized, oracle.Spec(normalize=True)).value[0])
    assert math.isclose(got, 0.25 * math.log(0.5) + 0.75 * math.log(1.5), rel_tol=1e-15)


def test_weights_multiply_rows_before_reduction():
    w = np.array([1.0, 3.0])
    rows = [exact_row(P[0], Q[0]), exact_row(P[1], Q[1])]
    assert np.allclose(
        oracle.expected(P, Q, oracle.Spec(reduction="per_row"), w).value, [rows[0], 3 * rows[1]], rtol=1e-15
    )
    got = float(oracle.expected(P, Q, oracle.Spec(reduction="mean_weighted"), w).value)
    assert math.isclose(got, (rows[0] + 3 * rows[1]) / 4, rel_tol=1e-15)


def test_rounding_to_each_dtype_is_nearest_even():
    x = np.array([1 / 3, 1e-40, 2.0**-140, 65519.0, 65520.0])
    assert round_to(x, "float16")[3] == 65504 and np.isinf(round_to(x, "float16")[4])
    bf = round_to(x, "bfloat16")
    assert bf[0] == np.float32(0.333984375) and bf[2] == 0.0  # 2**-140 is below half of bf16's least subnormal
    assert FORMATS["bfloat16"].unit_roundoff == 2.0**-8


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_ulp_is_the_spacing_of_the_format_at_every_binade_edge(dtype):
    """A record's ulp_error divides by this: the largest value below each power of two is in the lower
    binade (a log2-based reading put some of them a binade high), and subnormals share one spacing."""
    kind = np.dtype(dtype).type
    info = np.finfo(kind)
    powers = [kind(2.0) ** k for k in range(int(info.minexp) - int(info.nmant), int(info.maxexp))]
    below = [np.nextafter(p, kind(0)) for p in powers]
    values = np.array(powers + below + [kind(0), info.smallest_normal * kind(0.75)], dtype=kind)
    got = FORMATS[dtype].ulp(values.astype(np.float64))
    assert got.tolist() == np.spacing(values).astype(np.float64).tolist()
    assert FORMATS[dtype].ulp(np.float64(info.max)) == np.spacing(powers[-1])  # (np.spacing(max) overflows)


def test_float32_fed_values_give_the_exact_result_for_those_bits():
    p32 = round_to(P, "float32").astype(np.float64)
    q32 = round_to(Q, "float32").astype(np.float64)
    got = oracle.kl_per_row(p32, "probs", q32, "probs")
    assert got.tolist() == [exact_row(p32[0], q32[0]), exact_row(p32[1], q32[1])]
    assert got[0] != oracle.kl_per_row(P, "probs", Q, "probs")[0]  # the rounding of the inputs is visible


def test_conventions_share_an_argument_side_and_get_the_same_bits(monkeypatch):
    """The sides (p and log p of each argument) are computed once per fed values and reading: conventions
    that differ elsewhere reuse them, values and gradients alike, and what comes out is bit for bit what a
    fresh computation gives. Shared arrays are read-only, so no caller can change another's."""
    rng = np.random.default_rng(7)
    p = rng.dirichlet(np.ones(5), size=3)
    q = np.log(rng.dirichlet(np.ones(5), size=3))
    specs = [
        oracle.Spec(q_space="log_prob"),
        oracle.Spec(q_space="log_prob", zero_p="nan", zero_q="nan"),
        oracle.Spec(q_space="log_prob", elementwise="p*log(p/q)-p+q", reduction="sum"),
        oracle.Spec(q_space="log_prob", reduction="mean_all"),
    ]

    def fresh_memory():
        monkeypatch.setattr(oracle, "_RESULTS", oracle.cache.Results(oracle.Expectation))
        monkeypatch.setattr(oracle, "_TERMS", oracle._Recent(oracle._TERMS.limit))
        monkeypatch.setattr(oracle, "_SIDES", oracle._Recent(oracle._SIDES.limit))
        monkeypatch.setattr(oracle, "_GRADIENTS", oracle._Recent(oracle._GRADIENTS.limit))

    monkeypatch.setenv("KLCONF_CACHE_DIR", "off")
    alone = []
    for spec in specs:  # each from empty memory
        fresh_memory()
        e = oracle.expected(p, q, spec)
        alone.append((e.value, e.low, e.bound, oracle.gradient(p, q, spec, "q").value))

    fresh_memory()
    sides_computed = []
    real_side = oracle.kl.side
    monkeypatch.setattr(oracle.kl, "side", lambda fed, *rest: sides_computed.append(rest) or real_side(fed, *rest))
    for spec, (value, low, bound, grad) in zip(specs, alone):
        e, g = oracle.expected(p, q, spec), oracle.gradient(p, q, spec, "q")
        for got, want in ((e.value, value), (e.low, low), (e.bound, bound), (g.value, grad)):
            np.testing.assert_array_equal(got, want)
    assert len(sides_computed) == 2, sides_computed  # P as probabilities, Q as log-probabilities: once each

    (shared_p, shared_log_p, _), _ = oracle._sides(p, q, specs[0])
    with pytest.raises(ValueError, match="read-only"):
        shared_log_p.hi[0, 0] = 0.0
    with pytest.raises(ValueError, match="read-only"):
        shared_p.err[...] = 1.0
