"""Ports between the real frameworks (each test skips where its two frameworks are not installed): the
snippets, run in a fresh interpreter where only NumPy and the target framework can be imported,
reproduce the source call on a representative set of cases; the differences the full corpus shows
(subnormals flushed by XLA and TensorFlow, Keras' empty batch) come with their computed reasons."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from conformance.cases import load_cases
from conformance.frameworks import PORTING_TARGETS, Unavailable, builtin_apis
from conformance.porting.compose import compose
from conformance.porting.port import port, unavailable
from conformance.porting.recipe import recipe_for
from conformance.porting.verify import compare, source_call
from tests import fakes_conventions as fc
from tests.test_porting import ROOT, imported_modules, run_snippet

REPRESENTATIVE_CASES = (
    "canonical-2x3",
    "zeros-in-p",
    "zeros-in-q",
    "zero-both",
    "one-row-1d",
    "sequence-2x3x5",
    "unnormalized-rows",
    "broadcast-1-vs-4",
    "masked-logits",
    "extreme-logits",
    "dirichlet-8x5",
)
TARGET_MODULES = {
    "torch": {"torch"},
    "jax": {"jax", "jaxlib"},
    "tensorflow": {"tensorflow", "keras"},
    "scipy": {"scipy"},
}

# (source, options, target): each convention trap once at least
PORTS = [
    ("torch.nn.functional.kl_div", {"reduction": "batchmean", "log_target": False}, "jax"),  # NaN at p = q = 0
    ("torch.nn.functional.kl_div", {"reduction": "batchmean", "log_target": False}, "tensorflow"),
    ("torch.nn.functional.kl_div", {"reduction": "none", "log_target": True}, "scipy"),  # NaN wherever p = 0
    ("tf.keras.losses.KLDivergence", {"reduction": "sum_over_batch_size", "sample_weight": None}, "torch"),  # clip
    ("tf.keras.losses.KLDivergence", {"reduction": "mean_with_sample_weight", "sample_weight": "per_row"}, "jax"),
    ("scipy.stats.entropy", {"axis": "default"}, "torch"),  # normalises, classes on axis 0
    ("torch.nn.functional.cross_entropy-entropy", {"reduction": "mean"}, "tensorflow"),  # logits, class axis 1
    ("optax.kl_divergence", {}, "torch"),  # torch's own kl_div has the same zeros
    ("jax.scipy.special.kl_div", {}, "tensorflow"),  # the generalised term
]


def _api(name):
    return next(a for a in builtin_apis() if a.name == name)


def _port_or_skip(name, options, target, cases):
    api = _api(name)
    missing = unavailable(api, target)
    if missing:
        pytest.skip(missing)
    return port(api, options, target, cases)


@pytest.fixture(scope="module")
def representative():
    return [c for c in load_cases() if c.id in REPRESENTATIVE_CASES]


@pytest.mark.parametrize("name,options,target", PORTS, ids=[f"{p[0]}-{p[2]}" for p in PORTS])
def test_snippet_alone_reproduces_the_source(representative, tmp_path, name, options, target):
    result = _port_or_skip(name, options, target, representative)
    assert result.verdict == "pass", result.differs_on
    not_applicable = {e["case"] for e in result.verification.not_applicable()}
    assert not_applicable <= {"broadcast-1-vs-4"}  # an API that does not broadcast P against Q
    assert result.verified_cases == len(representative) - len(not_applicable)
    assert imported_modules(result.code) == {"numpy"} | ({"jax"} if target == "jax" else {target})
    inputs, fed_by_key = {}, {}
    for case in representative:
        for dtype in ("float32", "float64"):
            if case.id in not_applicable:
                continue
            fed = source_call(result.recipe, case, dtype)
            key = f"{case.id}:{dtype}"
            inputs[key] = {"p": fed.p, "q": fed.q, **({"w": fed.weights} if result.equivalent.takes_weights else {})}
            fed_by_key[key] = (case, fed, dtype)
    outputs = run_snippet(result.code, inputs, tmp_path, TARGET_MODULES[target])
    assert set(outputs) == set(inputs)
    for key, (value, _) in outputs.items():
        case, fed, dtype = fed_by_key[key]
        outcome = compare(result.equivalent, case, fed, value, dtype)
        assert outcome.status == "verified", (key, outcome.reason)


def test_torch_nan_at_zeros_is_reproduced_not_patched(representative):
    """torch's kl_div returns NaN where p = q = 0 (0 * log 0); the JAX port spells the term so that JAX's
    arithmetic gives the same NaN, with no mask."""
    result = _port_or_skip(
        "torch.nn.functional.kl_div", {"reduction": "sum", "log_target": False}, "jax", representative
    )
    assert result.equivalent.masked == []
    assert "jax.scipy.special.xlogy(p, p) - p * jnp.log(q)" in result.code
    zero_both = next(c for c in representative if c.id == "zero-both")
    fed = source_call(result.recipe, zero_both, "float64")
    assert np.isnan(fed.observation.value) and np.isnan(result.equivalent.function()(fed.p, fed.q))


def test_the_frameworks_own_kl_function_is_used_where_its_zeros_match(representative):
    result = _port_or_skip("optax.kl_divergence", {}, "torch", representative)
    assert "torch.nn.functional.kl_div(torch.log(q), p, reduction='none', log_target=False)" in result.code
    assert "the framework's own KL function" in result.equivalent.term.origin


def test_keras_single_weighted_row_is_left_undivided(representative):
    result = _port_or_skip(
        "tf.keras.losses.KLDivergence",
        {"reduction": "mean_with_sample_weight", "sample_weight": "per_row"},
        "torch",
        representative,
    )
    assert "torch.sum(rows) / torch.sum(w) if len(shape) > 1 else torch.sum(rows)" in result.code
    one_row = next(c for c in representative if c.id == "one-row-1d")
    assert "one-row-1d" in result.verification.verified()
    fed = source_call(result.recipe, one_row, "float64")
    value = result.equivalent.function()(fed.p, fed.q, fed.weights)
    assert np.isclose(value, fed.observation.value, rtol=1e-12)


MASKED = [  # conventions no spelling of the term has by itself: each vocabulary's mask is exercised
    ("nan-where-q-zero", dict(p_index=0, spaces=("prob", "prob"), reduction="per_row", zero_q="nan")),
    (
        "generalized-nan-where-p-zero",
        dict(
            p_index=0,
            spaces=("prob", "prob"),
            elementwise="p*log(p/q)-p+q",
            reduction="none",
            class_axis=None,
            zero_p="nan",
        ),
    ),
]


@pytest.mark.parametrize("target", PORTING_TARGETS)
@pytest.mark.parametrize("name,truth", MASKED, ids=[m[0] for m in MASKED])
def test_masks_in_every_vocabulary(representative, target, name, truth):
    from conformance.frameworks import binding
    from tests import fakes_conventions as fc

    missing = binding(target).available()
    if missing:
        pytest.skip(missing)
    api = fc.make(f"fake.port.{name}", dtypes=("float32", "float64"), **truth)
    try:
        result = port(api, {}, target, representative)
    except Unavailable as exc:  # e.g. paddle in a process that imported tensorflow
        pytest.skip(str(exc))
    assert result.equivalent.masked, "no spelling has these zeros: a mask is needed"
    assert result.verdict == "pass", result.differs_on


@pytest.mark.parametrize("case_id,target", [("tiny-probs-float32", "jax"), ("empty-batch", "torch")])
def test_differences_on_the_corpus_come_with_computed_reasons(case_id, target):
    """Where a port cannot follow the source, the record says which side departs and why."""
    source = "tf.keras.losses.KLDivergence" if case_id == "empty-batch" else "torch.nn.functional.kl_div"
    options = (
        {"reduction": "sum_over_batch_size", "sample_weight": None}
        if case_id == "empty-batch"
        else {"reduction": "sum", "log_target": False}
    )
    cases = [c for c in load_cases() if c.id in (case_id, "canonical-2x3")]
    result = _port_or_skip(source, options, target, cases)
    (entry,) = result.differs_on
    assert entry["case"] == case_id and result.verified_cases == 1
    if case_id == "empty-batch":  # Keras returns the empty per-sample losses instead of 0/0
        assert "the source returns shape [0], the torch equivalent shape []" in entry["reason"]
        assert "the source departs from its inferred convention" in entry["reason"]
        assert "reduction=per_row (inferred mean_batch)" in entry["reason"]
    else:  # XLA on CPU reads subnormal probabilities as zero
        assert "the jax expression departs from the source's convention" in entry["reason"]
        assert "flushed to zero" in entry["reason"]


def test_a_jax_equivalent_compiles_its_computation_once_per_shape_and_dtype(representative):
    """Eager JAX compiles each primitive for each new shape; the snippet jits the computation as a whole, so a
    second call on the same shape and dtype compiles nothing, and a new shape compiles the whole once."""
    result = _port_or_skip("torch.nn.functional.kl_div", {"reduction": "batchmean", "log_target": False}, "jax", [])
    namespace: dict = {}
    exec(compile(result.code, "<jax port>", "exec"), namespace)
    equivalent, native = namespace["equivalent"], namespace["_native"]
    p, q = np.full((2, 3), 1 / 3), np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    first = equivalent(p, q)
    assert native._cache_size() == 1
    assert equivalent(p, q) == first and native._cache_size() == 1  # same shape and dtype: no new compile
    equivalent(np.full((4, 5), 0.2), np.full((4, 5), 0.2))
    assert native._cache_size() == 2
    expected = np.sum(p * np.log(p / q)) / 2
    assert abs(float(first) - expected) < 1e-12


# MLX 0.32 can hang summing an array made from an empty NumPy buffer (cases/expectations/mlx.yaml): a worker then
# sits out a time limit and is replaced. Both ways klconf makes MLX arrays (the binding, and a port's to_mlx) make
# empty ones with MLX itself; each process below sums them many times, as a hang showed in about half such runs.
_EMPTY_SUMS = r"""
import sys
import numpy as np
import mlx.core as mx
from conformance.frameworks import binding
namespace = {}
exec(open(sys.argv[1]).read(), namespace)
fw = binding("mlx").handle()
makers = [lambda x, d: binding("mlx").to_native(fw, x, d, "cpu"), lambda x, d: namespace["to_mlx"](x)]
for make in makers:
    for dtype in ("float32", "float64"):
        for shape in ((0,), (0, 1), (0, 4)):
            x = make(np.zeros(shape, dtype), dtype)
            assert x.shape == shape and str(x.dtype) == f"mlx.core.{dtype}", (x.shape, x.dtype)
            for _ in range(100):
                assert float(np.array(mx.sum(x))) == 0.0
"""


def test_mlx_arrays_made_for_an_empty_batch_can_be_summed(tmp_path):
    pytest.importorskip("mlx.core")
    api = fc.make("fake.port.mlx-empty", options=({},), dtypes=("float32", "float64"))
    code = compose(recipe_for(api, {}), "mlx").code
    assert "def to_mlx(x):" in code and "to_mlx(p), to_mlx(q)" in code
    snippet = tmp_path / "snippet.py"
    snippet.write_text(code)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [subprocess.Popen([sys.executable, "-c", _EMPTY_SUMS, str(snippet)], env=env) for _ in range(3)]
    try:
        returns = [run.wait(timeout=120) for run in runs]
    finally:
        for run in runs:
            run.kill()
    assert returns == [0, 0, 0]
