"""Distribution families: canonical parameters, supports, and each library's spelling.

A case names a family and gives its parameters in klconf's canonical parametrisation; the
libraries differ in class names, keyword names and sometimes in the parameter itself. Every
such difference is written down here, as data, and nowhere else:

* Gamma: canonical (concentration, rate). All three libraries take `rate`; a scale
  parametrisation would be rate = 1/scale and is deliberately not accepted, so a case is
  never ambiguous.
* Beta: canonical (concentration1 = alpha, concentration0 = beta); distrax spells them
  `alpha` and `beta`.
* Pareto: canonical (scale, concentration); torch calls the concentration `alpha`.
* Geometric: canonical `probs` = success probability, support k = 0, 1, 2, ... counting the
  failures before the first success. torch.distributions.Geometric and TFP's Geometric both
  count failures from 0 (torch: P(X=k) = (1-p)^k p, k = 0, 1, ...; TFP: "in k + 1 Bernoulli
  trials, the first k trials failed"), unlike torch.Tensor.geometric_, which counts trials
  from 1. A library counting from 1 would shift P and Q alike, which leaves KL unchanged.
* Binomial: `total_count` is a per-element count and may differ between P and Q.
* Uniform: (low, high); Laplace, Gumbel, Cauchy, Normal, LogNormal: (loc, scale).
* MultivariateNormal: `mvn_tril` (loc, scale_tril: lower triangular, positive diagonal) and
  `mvn_diag` (loc, scale_diag). torch has one class, MultivariateNormal, so `mvn_diag` is
  built there as scale_tril = diag_embed(scale_diag); TFP has MultivariateNormalTriL and
  MultivariateNormalDiag; distrax MultivariateNormalTri and MultivariateNormalDiag.
* Categorical, OneHotCategorical: `probs`, normalised by every library (torch divides by the
  sum, TFP and distrax take log_softmax of log(probs)), so the canonical value is probs/sum.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Parameter domains (checked by the case loader):
#   real, positive, nonnegative, unit (0 <= x <= 1), open_unit (0 < x < 1), half_open_unit (0 < x <= 1),
#   count (integer >= 0), weights (vector of x >= 0 with a positive sum), positive_vector,
#   vector, tril (square, lower triangular, positive diagonal)
DOMAINS = (
    "real",
    "positive",
    "nonnegative",
    "unit",
    "open_unit",
    "half_open_unit",
    "count",
    "weights",
    "positive_vector",
    "vector",
    "tril",
)
EVENT_RANK = {"weights": 1, "positive_vector": 1, "vector": 1, "tril": 2}


@dataclass(frozen=True)
class Param:
    name: str
    domain: str

    @property
    def event_rank(self) -> int:
        return EVENT_RANK.get(self.domain, 0)


@dataclass(frozen=True)
class Family:
    """kind: 'continuous' (univariate), 'discrete' (univariate, integer support), 'categorical'
    (K classes), 'simplex' (Dirichlet) or 'vector' (multivariate normal)."""

    name: str
    params: tuple[Param, ...]
    kind: str
    notes: str = ""

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)


def _f(name, kind, *params, notes=""):
    return Family(name, tuple(Param(*p) for p in params), kind, notes)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        _f("normal", "continuous", ("loc", "real"), ("scale", "positive")),
        _f("mvn_tril", "vector", ("loc", "vector"), ("scale_tril", "tril")),
        _f("mvn_diag", "vector", ("loc", "vector"), ("scale_diag", "positive_vector")),
        _f("categorical", "categorical", ("probs", "weights")),
        _f("one_hot_categorical", "categorical", ("probs", "weights")),
        _f("bernoulli", "discrete", ("probs", "unit")),
        _f("binomial", "discrete", ("total_count", "count"), ("probs", "unit")),
        _f("beta", "continuous", ("concentration1", "positive"), ("concentration0", "positive")),
        _f("gamma", "continuous", ("concentration", "positive"), ("rate", "positive")),
        _f("chi2", "continuous", ("df", "positive")),
        _f("dirichlet", "simplex", ("concentration", "positive_vector")),
        _f("exponential", "continuous", ("rate", "positive")),
        _f("laplace", "continuous", ("loc", "real"), ("scale", "positive")),
        _f("poisson", "discrete", ("rate", "nonnegative"), notes="rate 0 is the point mass at 0"),
        _f(
            "uniform",
            "continuous",
            ("low", "real"),
            ("high", "real"),
            notes="low <= high; low = high is the point mass at low (zero width: no density)",
        ),
        _f("geometric", "discrete", ("probs", "half_open_unit"), notes="failures before the first success, k >= 0"),
        _f("gumbel", "continuous", ("loc", "real"), ("scale", "positive")),
        _f("cauchy", "continuous", ("loc", "real"), ("scale", "positive")),
        _f("half_normal", "continuous", ("scale", "positive")),
        _f("log_normal", "continuous", ("loc", "real"), ("scale", "positive")),
        _f("pareto", "continuous", ("scale", "positive"), ("concentration", "positive")),
        _f("continuous_bernoulli", "continuous", ("probs", "open_unit")),
    )
}


# --------------------------------------------------------------------------- libraries' spellings


@dataclass(frozen=True)
class Constructor:
    """How one library builds a family: `cls` (attribute path under the library's distributions
    module) and keyword -> source, where a source is a canonical parameter name, ("diag_embed",
    name) for a diagonal matrix built from a vector, or ("const", value)."""

    cls: str
    kwargs: dict = field(default_factory=dict)
    notes: str = ""


def _same(cls: str, family: str, **renamed) -> Constructor:
    """The library's keywords are the canonical names, except those in `renamed` (keyword=canonical)."""
    names = [n for n in FAMILIES[family].param_names if n not in renamed.values()]
    return Constructor(cls, {**{n: n for n in names}, **renamed})


_COMMON = {  # spelled identically in torch.distributions and TFP
    "normal": _same("Normal", "normal"),
    "categorical": _same("Categorical", "categorical"),
    "one_hot_categorical": _same("OneHotCategorical", "one_hot_categorical"),
    "bernoulli": _same("Bernoulli", "bernoulli"),
    "binomial": _same("Binomial", "binomial"),
    "beta": _same("Beta", "beta"),
    "gamma": _same("Gamma", "gamma"),
    "chi2": _same("Chi2", "chi2"),
    "dirichlet": _same("Dirichlet", "dirichlet"),
    "exponential": _same("Exponential", "exponential"),
    "laplace": _same("Laplace", "laplace"),
    "poisson": _same("Poisson", "poisson"),
    "uniform": _same("Uniform", "uniform"),
    "geometric": _same("Geometric", "geometric"),
    "gumbel": _same("Gumbel", "gumbel"),
    "cauchy": _same("Cauchy", "cauchy"),
    "half_normal": _same("HalfNormal", "half_normal"),
    "log_normal": _same("LogNormal", "log_normal"),
    "continuous_bernoulli": _same("ContinuousBernoulli", "continuous_bernoulli"),
}

CONSTRUCTORS: dict[str, dict[str, Constructor]] = {
    "torch": {
        **_COMMON,
        "mvn_tril": _same("MultivariateNormal", "mvn_tril"),
        "mvn_diag": Constructor(
            "MultivariateNormal",
            {"loc": "loc", "scale_tril": ("diag_embed", "scale_diag")},
            notes="torch has no diagonal class: scale_tril = diag_embed(scale_diag)",
        ),
        "pareto": _same("Pareto", "pareto", alpha="concentration"),
    },
    "tfp": {
        **_COMMON,
        "mvn_tril": _same("MultivariateNormalTriL", "mvn_tril"),
        "mvn_diag": _same("MultivariateNormalDiag", "mvn_diag"),
        "pareto": _same("Pareto", "pareto"),
    },
    "distrax": {
        "normal": _same("Normal", "normal"),
        "mvn_tril": Constructor(
            "MultivariateNormalTri", {"loc": "loc", "scale_tri": "scale_tril", "is_lower": ("const", True)}
        ),
        "mvn_diag": _same("MultivariateNormalDiag", "mvn_diag"),
        "categorical": _same("Categorical", "categorical"),
        "one_hot_categorical": _same("OneHotCategorical", "one_hot_categorical"),
        "bernoulli": _same("Bernoulli", "bernoulli"),
        "beta": Constructor("Beta", {"alpha": "concentration1", "beta": "concentration0"}),
        "gamma": _same("Gamma", "gamma"),
        "dirichlet": _same("Dirichlet", "dirichlet"),
        "laplace": _same("Laplace", "laplace"),
        "uniform": _same("Uniform", "uniform"),
        "gumbel": _same("Gumbel", "gumbel"),
    },
}
CONSTRUCTORS["tfp_jax"] = CONSTRUCTORS["tfp"]  # TFP's JAX substrate mirrors the TensorFlow API


def batch_shape(family: Family, shapes: dict[str, tuple]) -> tuple | None:
    """The broadcast batch shape of a family's parameters (None if they do not broadcast)."""
    import numpy as np

    batches = [shapes[p.name][: len(shapes[p.name]) - p.event_rank] for p in family.params]
    try:
        return tuple(np.broadcast_shapes(*batches))
    except ValueError:
        return None


def event_size(family: Family, shapes: dict[str, tuple]) -> int | None:
    """K for categorical and Dirichlet families, the dimension for multivariate normals."""
    for p in family.params:
        if p.event_rank:
            return shapes[p.name][-1]
    return None
