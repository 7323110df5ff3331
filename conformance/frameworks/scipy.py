"""SciPy's KL functions: a reference family users port from (CPU, NumPy arrays)."""

from __future__ import annotations

from types import SimpleNamespace

from ..conventions import Convention
from ..porting.vocabulary import Vocabulary
from . import Api, Binding, Snippet, grid
from .numpy import as_float64, cpu_only

ORDER = 40  # place in reports


def _load():
    import numpy
    import scipy
    import scipy.special
    import scipy.stats

    return SimpleNamespace(scipy=scipy, special=scipy.special, stats=scipy.stats, np=numpy)


def _state(fw) -> dict:
    """scipy.special's error handling (`seterr`): an API that sets it to "raise" would turn later calls into errors."""
    return {"scipy.special.geterr": fw.special.geterr()}


def _restore(fw, changed: dict) -> None:
    if "scipy.special.geterr" in changed:
        fw.special.seterr(**changed["scipy.special.geterr"])


BINDING = Binding(
    name="scipy",
    modules=("scipy",),
    load=_load,
    version=lambda fw: {"scipy": fw.scipy.__version__, "numpy": fw.np.__version__},
    devices=lambda fw: ["cpu"],
    to_native=cpu_only,
    to_numpy=as_float64,
    snippet=Snippet(  # mirrors cpu_only and as_float64
        imports="import scipy.special\nimport scipy.stats",
        native=lambda values, dtype, device: f"np.array({values}, dtype={dtype!r})",
        to_numpy="np.asarray({result}).astype(np.float64)",
    ),
    state=_state,
    restore=_restore,
)

_CPU_DTYPES = ("float16", "float32", "float64")

APIS = [
    Api(
        name="scipy.special.rel_entr",
        framework="scipy",
        call=lambda fw, x, y, o, w: fw.special.rel_entr(x, y),
        snippet="scipy.special.rel_entr({a}, {b})",
        convention=lambda o: Convention(
            arguments=("x", "y"), p_argument="x", input_space=("prob", "prob"), reduction="none", class_axis=None
        ),
        dtypes=_CPU_DTYPES,
        devices=("cpu",),
        doc_url="https://docs.scipy.org/doc/scipy/reference/generated/scipy.special.rel_entr.html",
    ),
    Api(
        name="scipy.special.kl_div",
        framework="scipy",
        call=lambda fw, x, y, o, w: fw.special.kl_div(x, y),
        snippet="scipy.special.kl_div({a}, {b})",
        convention=lambda o: Convention(
            arguments=("x", "y"),
            p_argument="x",
            input_space=("prob", "prob"),
            reduction="none",
            class_axis=None,
            elementwise="p*log(p/q)-p+q",
        ),
        dtypes=_CPU_DTYPES,
        devices=("cpu",),
        doc_url="https://docs.scipy.org/doc/scipy/reference/generated/scipy.special.kl_div.html",
    ),
    Api(
        name="scipy.stats.entropy",
        framework="scipy",
        call=lambda fw, pk, qk, o, w: fw.stats.entropy(
            pk, qk, **({} if o["axis"] == "default" else {"axis": o["axis"]})
        ),
        convention=lambda o: Convention(
            arguments=("pk", "qk"),
            p_argument="pk",
            input_space=("prob", "prob"),
            reduction="per_row",
            class_axis=0 if o["axis"] in ("default", 0) else -1,
            normalizes=True,
        ),
        options=grid(axis=("default", -1)),
        snippet=lambda o: (
            "scipy.stats.entropy({a}, {b})"
            if o["axis"] == "default"
            else "scipy.stats.entropy({a}, {b}, axis={o[axis]})"
        ),
        dtypes=_CPU_DTYPES,
        devices=("cpu",),
        notes="Normalises both arguments and sums over axis 0 unless told otherwise.",
        doc_url="https://docs.scipy.org/doc/scipy/reference/generated/scipy.stats.entropy.html",
    ),
]

# How a ported equivalent is written in this framework (conformance/porting/vocabulary.py)
VOCABULARY = Vocabulary(
    framework="scipy",
    imports=("import scipy.special",),
    native="np.asarray({x})",
    to_numpy="np.asarray({x})",
    scope='with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # log(0) and 0 * inf are meant',
    log="np.log({x})",
    xlogy="scipy.special.xlogy({x}, {y})",
    where="np.where({c}, {a}, {b})",
    constant="{value}",
    clip="np.clip({x}, {lo}, {hi})",
    sum="np.sum({x}, axis={axis})",
    sum_keep="np.sum({x}, axis={axis}, keepdims=True)",
    total="np.sum({x})",
)
