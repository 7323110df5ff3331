"""NumPy implementations with known conventions and planted bugs, as klconf plug-in adapters.

They run on the "numpy" binding, so klconf's own tests need no framework installed.
"""

from __future__ import annotations

import numpy as np

from conformance.conventions import Convention
from conformance.frameworks import Api, grid


def _terms(p, log_q):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, p * (np.log(np.where(p > 0, p, 1.0)) - log_q), 0.0)


def _reduce(terms, reduction):
    if reduction == "none":
        return terms
    rows = terms.sum(axis=-1)
    return {"per_row": rows, "sum": rows.sum(), "mean_all": terms.mean(), "batchmean": rows.sum() / terms.shape[0]}[
        reduction
    ]


def torch_like(name="fake.kl_div", scale=1.0, computes=None, declared=None, dtypes=("float32", "float64")) -> Api:
    """(log Q, P) like torch.nn.functional.kl_div; `computes` is the reduction it really applies."""

    def call(fw, log_q, p, o, w):
        out = _reduce(_terms(p, log_q), computes or o["reduction"]) * scale
        return np.asarray(out, dtype=p.dtype)

    reductions = {"none": "none", "sum": "sum", "mean": "mean_all", "batchmean": "mean_batch"}
    return Api(
        name=name,
        framework="numpy",
        call=lambda fw, a, b, o, w: call(fw, a, b, {"reduction": _name(o)}, w),
        convention=lambda o: Convention(
            arguments=("input", "target"),
            p_argument="target",
            input_space=("log_prob", "prob"),
            reduction=reductions[declared or o["reduction"]],
            class_axis=None,
        ),
        options=grid(reduction=("batchmean", "sum", "mean", "none"))
        if declared is None
        else grid(reduction=(declared,)),
        dtypes=dtypes,
        devices=("cpu",),
    )


def _name(o):
    return {"mean": "mean_all"}.get(o["reduction"], o["reduction"])


EXACT = torch_like("fake.exact")
SCALED = torch_like("fake.scaled_1.001", scale=1.001)
WRONG_REDUCTION = torch_like("fake.declares_batchmean_computes_mean", computes="mean_all", declared="batchmean")


def plugin_apis():
    """What `--api tests.fakes:plugin_apis` loads."""
    return [EXACT]


def _custom(name, fn):
    """A (log Q, P) API with torch-like reductions whose per-term computation is `fn(p, log_q)`."""

    def call(fw, log_q, p, o, w):
        reduction = {"mean": "mean_all"}.get(o["reduction"], o["reduction"])
        return np.asarray(_reduce(fn(p, log_q), reduction), dtype=p.dtype)

    return Api(
        name=name,
        framework="numpy",
        call=call,
        convention=EXACT.convention,
        options=EXACT.options,
        dtypes=EXACT.dtypes,
        devices=("cpu",),
    )


# Planted property violations:
POSITION_DEPENDENT = _custom(
    "fake.position_dependent", lambda p, lq: _terms(p, lq) * (1 + 1e-3 * np.arange(p.shape[-1]))
)
SELF_NONZERO = _custom("fake.self_nonzero", lambda p, lq: _terms(p, lq) + 1e-3 * p)


def _inconsistent(fw, log_q, p, o, w):
    out = EXACT.call(fw, log_q, p, o, w)
    return out * 1.01 if o["reduction"] == "sum" else out


INCONSISTENT_SUM = Api(
    name="fake.inconsistent_sum",
    framework="numpy",
    call=_inconsistent,
    convention=EXACT.convention,
    options=EXACT.options,
    dtypes=EXACT.dtypes,
    devices=("cpu",),
)
