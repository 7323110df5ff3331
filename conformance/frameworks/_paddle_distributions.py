"""`paddle.distribution.kl_divergence` as a distribution-level library (served by frameworks/paddle.py).

Kept apart from paddle.py because it needs `distributions.libraries.Library`, which imports the
framework registry: paddle.py's `distribution_libraries` imports this module only when asked.
How Paddle spells each family is data here, next to its loader, as families.CONSTRUCTORS holds
the spellings of the other libraries. Paddle's Categorical takes logits, not probabilities, so the
categorical families are not built (their checks are unsupported, with that reason).
"""

from __future__ import annotations

from types import SimpleNamespace

from ..distributions.families import Constructor
from ..distributions.libraries import Library


def _load():
    from .paddle import BINDING

    BINDING.handle()  # refuses a process that has imported tensorflow (see paddle.py)
    import paddle
    import paddle.distribution as dist
    from paddle.distribution import kl

    def lookup(type_p, type_q):
        try:  # the dispatch kl_divergence itself uses: the most specific registered pair
            return kl._dispatch(type_p, type_q)
        except NotImplementedError:
            return None

    return SimpleNamespace(
        paddle=paddle,
        dist=dist,
        kl=dist.kl_divergence,
        lookup=lookup,
        registry=lambda: dict(kl._REGISTER_TABLE),
        diag_embed=paddle.diag_embed,
    )


def _same(cls: str, *names: str, **renamed: str) -> Constructor:
    return Constructor(cls, {**{n: n for n in names}, **renamed})


CONSTRUCTORS = {
    "normal": _same("Normal", "loc", "scale"),
    "mvn_tril": _same("MultivariateNormal", "loc", "scale_tril"),
    "mvn_diag": Constructor(
        "MultivariateNormal",
        {"loc": "loc", "scale_tril": ("diag_embed", "scale_diag")},
        notes="one class: scale_tril = diag_embed(scale_diag)",
    ),
    "bernoulli": _same("Bernoulli", "probs"),
    "binomial": _same("Binomial", "total_count", "probs"),
    "beta": Constructor("Beta", {"alpha": "concentration1", "beta": "concentration0"}),
    "gamma": _same("Gamma", "concentration", "rate"),
    "dirichlet": _same("Dirichlet", "concentration"),
    "exponential": _same("Exponential", "rate"),
    "laplace": _same("Laplace", "loc", "scale"),
    "poisson": _same("Poisson", "rate"),
    "uniform": _same("Uniform", "low", "high"),
    "geometric": _same("Geometric", "probs"),
    "cauchy": _same("Cauchy", "loc", "scale"),
    "log_normal": _same("LogNormal", "loc", "scale"),
    "continuous_bernoulli": _same("ContinuousBernoulli", "probs"),
}

LIBRARY = Library(
    name="paddle.distribution.kl_divergence",
    key="paddle",
    framework="paddle",
    modules=("paddle",),
    load=_load,
    versions=lambda h: {"paddle": h.paddle.__version__},
    constructors=CONSTRUCTORS,
    notes="Distribution objects take the default dtype unless given tensors; klconf passes tensors.",
)
