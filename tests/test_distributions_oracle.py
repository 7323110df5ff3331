"""The distribution-level closed forms against numerical integration and summation (no framework needed)."""

import mpmath
import numpy as np
import pytest
from mpmath import mpf

from conformance.distributions import closed_forms as cf
from conformance.distributions import numeric, stored
from conformance.distributions.cases import load_corpus


def M(**kw):
    return {k: mpf(v) for k, v in kw.items()}


N1, N2 = M(loc=0.3, scale=1.2), M(loc=-1, scale=0.7)
G1, G2 = M(concentration=2.5, rate=1.5), M(concentration=0.8, rate=0.6)
B1, B2 = M(concentration1=2.5, concentration0=1.5), M(concentration1=0.8, concentration0=3)
U1, U_WIDE = M(low=0.2, high=0.9), M(low=-1, high=2)
UNIVARIATE = [
    ("normal", N1, "normal", N2),
    ("laplace", N1, "laplace", N2),
    ("gumbel", N1, "gumbel", N2),
    ("cauchy", N1, "cauchy", N2),
    ("half_normal", M(scale=1.2), "half_normal", M(scale=0.7)),
    ("log_normal", M(loc=0.3, scale=0.5), "log_normal", M(loc=-0.2, scale=0.7)),
    ("gamma", G1, "gamma", G2),
    ("gamma", M(concentration=0.5, rate=1), "gamma", G1),
    ("chi2", M(df=3), "gamma", G2),
    ("gamma", G1, "chi2", M(df=4)),
    ("chi2", M(df=3), "chi2", M(df=1.5)),
    ("exponential", M(rate=1.5), "exponential", M(rate=0.4)),
    ("exponential", M(rate=1.5), "gamma", G2),
    ("gamma", G1, "exponential", M(rate=0.4)),
    ("beta", B1, "beta", B2),
    ("beta", M(concentration1=0.5, concentration0=0.7), "beta", B1),
    ("uniform", U1, "uniform", U_WIDE),
    ("uniform", U1, "uniform", M(low=0.3, high=2)),
    ("pareto", M(scale=2, concentration=3), "pareto", M(scale=1.5, concentration=1.2)),
    ("pareto", M(scale=1, concentration=3), "pareto", M(scale=1.5, concentration=1.2)),
    ("continuous_bernoulli", M(probs=0.3), "continuous_bernoulli", M(probs=0.8)),
    ("continuous_bernoulli", M(probs=0.5), "continuous_bernoulli", M(probs=0.1)),
    ("normal", N1, "laplace", N2),
    ("laplace", N1, "normal", N2),
    ("normal", N1, "gumbel", M(loc=-1, scale=2.7)),
    ("gumbel", N1, "normal", N2),
    ("exponential", M(rate=1.5), "normal", N2),
    ("exponential", M(rate=1.5), "gumbel", M(loc=-1, scale=2.7)),
    ("gamma", G1, "normal", N2),
    ("gamma", G1, "gumbel", M(loc=-1, scale=2.7)),
    ("uniform", U1, "normal", N2),
    ("uniform", U1, "gumbel", N2),
    ("uniform", U1, "exponential", M(rate=0.4)),
    ("uniform", M(low=-0.5, high=1), "exponential", M(rate=0.4)),
    ("uniform", U1, "gamma", G2),
    ("uniform", U1, "beta", B2),
    ("beta", B1, "uniform", U_WIDE),
    ("beta", B1, "uniform", U1),
    ("beta", B1, "normal", N2),
    ("beta", B1, "exponential", M(rate=0.4)),
    ("beta", B1, "gamma", G2),
    ("normal", N1, "exponential", M(rate=0.4)),
    ("bernoulli", M(probs=0.3), "bernoulli", M(probs=0.8)),
    ("bernoulli", M(probs=0), "bernoulli", M(probs=0.8)),
    ("bernoulli", M(probs=0.3), "bernoulli", M(probs=1)),
    ("binomial", M(total_count=5, probs=0.3), "binomial", M(total_count=5, probs=0.8)),
    ("binomial", M(total_count=3, probs=0.3), "binomial", M(total_count=5, probs=0.8)),
    ("binomial", M(total_count=6, probs=0.3), "binomial", M(total_count=5, probs=0.8)),
    ("poisson", M(rate=3.3), "poisson", M(rate=1.2)),
    ("poisson", M(rate=0), "poisson", M(rate=1.2)),
    ("poisson", M(rate=2), "poisson", M(rate=0)),
    ("geometric", M(probs=0.3), "geometric", M(probs=0.8)),
    ("geometric", M(probs=1), "geometric", M(probs=0.25)),
    ("geometric", M(probs=0.5), "geometric", M(probs=1)),
    ("bernoulli", M(probs=0.3), "poisson", M(rate=1.2)),
    ("poisson", M(rate=3.3), "bernoulli", M(probs=0.8)),
    ("bernoulli", M(probs=0.3), "binomial", M(total_count=3, probs=0.5)),
]
# Degenerate members: all their mass on one point, judged by where that point lies, not by the family's range.
POINT_MASSES = [
    ("poisson", M(rate=0), "bernoulli", M(probs=0.3)),
    ("poisson", M(rate=0), "bernoulli", M(probs=0)),
    ("poisson", M(rate=0), "bernoulli", M(probs=1)),
    ("poisson", M(rate=0), "binomial", M(total_count=3, probs=0.2)),
    ("poisson", M(rate=0), "binomial", M(total_count=0, probs=0.5)),
    ("binomial", M(total_count=5, probs=0), "binomial", M(total_count=3, probs=0.2)),
    ("binomial", M(total_count=5, probs=1), "binomial", M(total_count=3, probs=0.2)),
    ("binomial", M(total_count=4, probs=1), "binomial", M(total_count=6, probs=0.5)),
    ("binomial", M(total_count=0, probs=0.3), "binomial", M(total_count=0, probs=0.7)),
    ("binomial", M(total_count=0, probs=0), "binomial", M(total_count=0, probs=1)),
    ("binomial", M(total_count=0, probs=0.5), "binomial", M(total_count=3, probs=0.2)),
    ("binomial", M(total_count=4, probs=0), "poisson", M(rate=1.5)),
    ("bernoulli", M(probs=0), "poisson", M(rate=2)),
    ("bernoulli", M(probs=1), "poisson", M(rate=0)),
    ("bernoulli", M(probs=1), "binomial", M(total_count=3, probs=0.5)),
    ("geometric", M(probs=1), "geometric", M(probs=1)),
    ("geometric", M(probs=1), "poisson", M(rate=0.7)),
    ("geometric", M(probs=1), "bernoulli", M(probs=0.4)),
    ("geometric", M(probs=0.5), "bernoulli", M(probs=0.4)),
    ("poisson", M(rate=1.5), "bernoulli", M(probs=0.3)),
    ("poisson", M(rate=0), "geometric", M(probs=0.25)),
]


@pytest.mark.parametrize("pf,p,qf,q", UNIVARIATE, ids=[f"{a}-{c}-{i}" for i, (a, _, c, _) in enumerate(UNIVARIATE)])
def test_closed_form_matches_quadrature_or_summation(pf, p, qf, q):
    closed, numerical = cf.kl(pf, p, qf, q), numeric.kl(pf, p, qf, q)
    if numerical == cf.INF:
        assert closed == cf.INF
    else:
        assert closed != cf.INF and abs(closed - numerical) <= mpf(10) ** -12 * max(1, abs(numerical))


@pytest.mark.parametrize("pf,p,qf,q", POINT_MASSES, ids=[f"{a}-{c}-{i}" for i, (a, _, c, _) in enumerate(POINT_MASSES)])
def test_point_masses_match_direct_summation(pf, p, qf, q):
    closed, summed = cf.kl(pf, p, qf, q), numeric.kl(pf, p, qf, q)
    assert not mpmath.isnan(closed)
    if summed == cf.INF:
        assert closed == cf.INF
    else:
        assert closed != cf.INF and abs(closed - summed) <= mpf(10) ** -20 * max(1, abs(summed))


def test_point_mass_truths_named_by_the_issue():
    """KL(Poisson(0)||Bernoulli(0.3)) = -log 0.7 and KL(Binomial(5, 0)||Binomial(3, 0.2)) = -3 log 0.8 (finite:
    the point 0 lies in Q's support), KL(Binomial(0, .)||Binomial(0, .)) = 0 (not 0 * inf = NaN)."""
    with mpmath.workdps(50):
        p3, p2 = mpf(0.3), mpf(0.2)  # the float64 values the cases hold
        assert abs(cf.kl("poisson", {"rate": mpf(0)}, "bernoulli", {"probs": p3}) + mpmath.log(1 - p3)) < mpf(10) ** -45
        kl = cf.kl(
            "binomial", {"total_count": mpf(5), "probs": mpf(0)}, "binomial", {"total_count": mpf(3), "probs": p2}
        )
        assert abs(kl + 3 * mpmath.log(1 - p2)) < mpf(10) ** -45
    assert cf.kl("binomial", M(total_count=0, probs=0.3), "binomial", M(total_count=0, probs=0.7)) == 0


def test_a_zero_width_uniform_is_a_point_mass():
    """No density, so no integral to check against: KL(delta_a || Q) is 0 for Q = delta_a and +inf for any Q
    with a density (P is not absolutely continuous with respect to Q), whatever interval Q has."""
    point = M(low=1, high=1)
    assert cf.kl("uniform", point, "uniform", M(low=1, high=1)) == 0
    for qf, q in [
        ("uniform", M(low=0, high=2)),
        ("uniform", M(low=1, high=3)),
        ("uniform", M(low=2, high=2)),
        ("normal", N1),
        ("exponential", M(rate=0.4)),
        ("beta", B1),
        ("gamma", G1),
    ]:
        assert cf.kl("uniform", point, qf, q) == cf.INF, qf
    assert cf.kl("uniform", U1, "uniform", M(low=0.5, high=0.5)) == cf.INF
    assert cf.kl("uniform", M(low=1.5, high=1), "uniform", point) == cf.INF  # an inverted probe: no exception


def test_boundary_corpus_matches_direct_summation_element_by_element():
    """Every stored value of the discrete and categorical boundary cases, re-derived by summing p log(p/q)."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "cases" / "distributions"
    checked = 0
    for name in ("point_masses.yaml", "boundaries.yaml"):
        cases, problems = load_corpus(root / name)
        assert not problems
        for case in cases:
            if {case.p.family, case.q.family} - set(numeric.DISCRETE) - {"categorical"}:
                continue
            for index in np.ndindex(*case.batch):
                p = cf.element_params(case.p.family, case.p.params, case.batch, index)
                q = cf.element_params(case.q.family, case.q.params, case.batch, index)
                summed = (
                    numeric.kl_categorical(p["probs"], q["probs"])
                    if case.p.family == "categorical"
                    else numeric.kl(case.p.family, p, case.q.family, q)
                )
                stored_value = np.asarray(case.expected["kl"], np.float64)[index]
                if summed == cf.INF:
                    assert stored_value == np.inf, (case.id, index)
                else:
                    assert abs(stored_value - float(summed)) <= 1e-15 * max(1.0, float(summed)), (case.id, index)
                checked += 1
    assert checked >= 40


def _mvn(loc, tril):
    return {"loc": [mpf(x) for x in loc], "scale_tril": [[mpf(x) for x in row] for row in tril]}


def _cov(tril):
    m = mpmath.matrix(tril)
    return (m * m.T).tolist()


def test_multivariate_normal_matches_gauss_hermite_on_covariances():
    lp = [[1.2, 0, 0], [0.3, 0.8, 0], [-0.5, 0.2, 1.5]]
    lq = [[0.9, 0, 0], [-0.4, 1.1, 0], [0.1, 0.6, 0.7]]
    mp_, mq = [0.1, -0.3, 0.5], [-0.2, 0.4, 1.0]
    closed = cf.kl("mvn_tril", _mvn(mp_, lp), "mvn_tril", _mvn(mq, lq))
    assert abs(closed - numeric.kl_mvn(mp_, _cov(lp), mq, _cov(lq))) < 1e-12


def test_diagonal_normal_is_the_sum_of_univariate_kls_and_matches_its_tril_form():
    loc_p, sd_p, loc_q, sd_q = [0.0, 1.0, -1.0], [1.0, 0.5, 2.0], [0.5, 0.5, 0.0], [2.0, 0.5, 1.0]
    diag = cf.kl(
        "mvn_diag",
        {"loc": [mpf(x) for x in loc_p], "scale_diag": [mpf(x) for x in sd_p]},
        "mvn_diag",
        {"loc": [mpf(x) for x in loc_q], "scale_diag": [mpf(x) for x in sd_q]},
    )
    parts = mpmath.fsum(
        cf.kl("normal", M(loc=a, scale=b), "normal", M(loc=c, scale=d)) for a, b, c, d in zip(loc_p, sd_p, loc_q, sd_q)
    )
    assert abs(diag - parts) < mpf(10) ** -40
    tril_q = [[sd_q[i] if i == j else 0 for j in range(3)] for i in range(3)]
    mixed = cf.kl(
        "mvn_diag",
        {"loc": [mpf(x) for x in loc_p], "scale_diag": [mpf(x) for x in sd_p]},
        "mvn_tril",
        _mvn(loc_q, tril_q),
    )
    assert abs(mixed - diag) < mpf(10) ** -40


def test_dirichlet_matches_simplex_quadrature_and_reduces_to_beta():
    p, q = [mpf(2), mpf(3.5), mpf(1.5)], [mpf(1.2), mpf(4), mpf(2.5)]
    closed = cf.kl("dirichlet", {"concentration": p}, "dirichlet", {"concentration": q})
    assert abs(closed - numeric.kl_dirichlet3(p, q)) < 1e-10
    two = cf.kl(
        "dirichlet", {"concentration": [mpf(2.5), mpf(1.5)]}, "dirichlet", {"concentration": [mpf(0.8), mpf(3)]}
    )
    assert abs(two - cf.kl("beta", B1, "beta", B2)) < mpf(10) ** -40


def test_categorical_normalises_and_handles_zeros():
    p, q = [mpf(2), mpf(1), mpf(1), mpf(0)], [mpf(1), mpf(1), mpf(1), mpf(1)]
    closed = cf.kl("categorical", {"probs": p}, "categorical", {"probs": q})
    assert abs(closed - numeric.kl_categorical(p, q)) < mpf(10) ** -18
    assert cf.kl("one_hot_categorical", {"probs": p}, "one_hot_categorical", {"probs": q}) == closed
    assert cf.kl("categorical", {"probs": q}, "categorical", {"probs": p}) == cf.INF


@pytest.mark.parametrize(
    "special,general",
    [
        (
            ("exponential", M(rate=1.5), "exponential", M(rate=0.4)),
            ("gamma", M(concentration=1, rate=1.5), "gamma", M(concentration=1, rate=0.4)),
        ),
        (
            ("chi2", M(df=3), "chi2", M(df=5)),
            ("gamma", M(concentration=1.5, rate=0.5), "gamma", M(concentration=2.5, rate=0.5)),
        ),
        (
            ("half_normal", M(scale=1.2), "half_normal", M(scale=0.7)),
            ("normal", M(loc=0, scale=1.2), "normal", M(loc=0, scale=0.7)),
        ),
    ],
)
def test_special_cases_agree_with_their_general_family(special, general):
    assert abs(cf.kl(*special) - cf.kl(*general)) < mpf(10) ** -40


def test_evaluate_broadcasts_batches_and_reports_conditioning():
    p = {"loc": np.array([[0.0], [1.0]]), "scale": np.array(1.0)}
    q = {"loc": np.array([0.0, 0.5, 2.0]), "scale": np.array([1.0, 2.0, 0.5])}
    values, magnitude, counts = cf.evaluate("normal", p, "normal", q, (2, 3))
    assert values.shape == magnitude.shape == counts.shape == (2, 3)
    assert values[0, 0] == 0.0 and magnitude[0, 0] > 0  # KL 0 from terms that cancel exactly
    one = cf.kl("normal", M(loc=1.0, scale=1.0), "normal", M(loc=2.0, scale=0.5))
    assert values[1, 2] == float(one)


def test_coverage_is_decided_by_family():
    assert cf.covered("normal", "gumbel") and cf.covered("chi2", "exponential") and cf.covered("mvn_diag", "mvn_tril")
    assert cf.covered("normal", "pareto")  # supports never nest: always +inf
    assert not cf.covered("pareto", "normal") and not cf.covered("dirichlet", "categorical")
    assert not cf.covered("normal", "poisson")
    with pytest.raises(cf.NotCovered):
        cf.kl_terms("pareto", M(scale=1, concentration=2), "normal", N1)


def test_bundled_distribution_corpus_is_confirmed():
    cases, problems = load_corpus()
    assert not problems and len(cases) >= 40
    assert len({c.pair for c in cases}) >= 30
    assert all(c.expected for c in cases) and all(not stored.verify(c) for c in cases)
    written = [c for c in cases if "explored" not in c.tags]  # an explored case is one shrunk element
    assert all(len(c.batch) >= 1 and int(np.prod(c.batch)) >= 2 for c in written)  # batches, not scalars
