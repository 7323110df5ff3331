"""Keras 3 on the JAX and PyTorch backends, each in its own child process (conformance/frameworks/_keras.py)."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from conformance import cases, frameworks, gradients, runner
from conformance.frameworks import _keras

BACKENDS = ["jax", "torch"]
CLIPPED_CASE = "explored-value-scipy.special.kl_div-795d0f32"  # subnormal masses, clipped to the bound


@pytest.fixture(scope="module")
def corpus():
    return {c.id: c for c in cases.load_cases()}


def _handle(backend: str):
    for module in ("keras", backend):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")
    return frameworks.binding(f"keras_{backend}").handle()


def _api(backend: str, name: str) -> frameworks.Api:
    return next(a for a in frameworks.builtin_apis([f"keras_{backend}"]) if a.name == f"{name}[{backend}]")


@pytest.mark.parametrize("backend", BACKENDS)
def test_keras_runs_on_its_backend_in_another_process(backend):
    fw = _handle(backend)
    assert fw.info["settings"]["keras.backend"] == backend
    assert fw.child.process.pid != os.getpid()
    assert "keras" in fw.info["versions"] and fw.info["devices"][0] == "cpu"


@pytest.mark.parametrize("backend", BACKENDS)
def test_values_and_gradients_come_back_from_the_child(corpus, backend):
    _handle(backend)
    api = _api(backend, "keras.losses.KLDivergence")
    options = tuple({"reduction": "sum", "sample_weight": "per_row"}.items())
    rec = runner.run_check(runner.Check(corpus["dirichlet-8x5"], api, options, "cpu", "float64"))
    assert rec.verdict == "pass", rec.message
    assert rec.output_dtype == "float64" and rec.settings == ({"jax_enable_x64": True} if backend == "jax" else {})
    grad = gradients.run_gradient_check(
        gradients.GradientCheck(corpus["dirichlet-8x5"], api, options, "cpu", "float32", "y_pred")
    )
    assert grad.verdict == "pass", grad.message


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_clip_bound_is_the_one_the_backend_applies_in_float64(corpus, backend):
    """On PyTorch, Keras converts the clip bound 1e-7 to a float32 tensor before torch.clip promotes it, so
    float64 inputs are clipped at float32(1e-7); on JAX the bound stays 1e-7. The explored case that found
    it has most of its mass far below the bound (log of the bound differs by 1.2e-8 relative), and the
    declared convention must predict the observed value to float64's tolerance on both backends."""
    _handle(backend)
    api = _api(backend, "keras.losses.kl_divergence")
    bound = np.float32(1e-7) if backend == "torch" else 1e-7
    assert api.convention({}).clip_epsilon == float(bound)
    rec = runner.run_check(runner.Check(corpus[CLIPPED_CASE], api, (), "cpu", "float64"))
    assert rec.verdict == "pass", rec.message


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_child_that_dies_is_replaced_and_the_call_in_flight_is_an_error(corpus, backend):
    fw = _handle(backend)
    api = _api(backend, "keras.losses.kl_divergence")
    check = runner.Check(corpus["forum-example"], api, (), "cpu", "float32")
    assert runner.run_check(check).verdict == "pass"
    pid = fw.child.process.pid
    fw.child.process.kill()  # dies mid-call: the exchange finds the pipe closed
    carrier = _keras.Remote(np.array([[0.5, 0.5]]), "float32", "cpu")
    with pytest.raises(RuntimeError, match=f"the Keras {backend} process died"):
        fw.child._exchange(("value", _keras.Pending("losses.kl_divergence", {}, (carrier, carrier), None), None))
    assert fw.child.process is None
    assert runner.run_check(check).verdict == "pass" and fw.child.process.pid != pid  # restarted for the next call


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_exception_in_the_child_carries_its_type_and_message(backend):
    fw = _handle(backend)
    carrier = _keras.Remote(np.array([[0.5, 0.5]]), "float32", "cpu")
    bad = _keras.Pending(
        "losses.KLDivergence", {"reduction": "no-such-reduction", "sample_weight": None}, (carrier, carrier), None
    )
    with pytest.raises(_keras.RemoteError, match=r"^ValueError: .*no-such-reduction"):
        fw.child.request("value", bad)
    ok = _keras.Pending("losses.kl_divergence", {}, (carrier, carrier), None)
    assert fw.child.request("value", ok).values.tolist() == [0.0]  # the child goes on serving


def test_every_keras_api_on_tensorflow_has_a_counterpart_on_each_backend():
    tensorflow = {
        a.name.removeprefix("tf.").removeprefix("keras.")
        for a in frameworks.builtin_apis(["tensorflow"])
        if a.name.startswith(("keras.", "tf.keras."))
    }
    for backend in BACKENDS:
        names = {
            a.name.removeprefix("keras.").removesuffix(f"[{backend}]")
            for a in frameworks.builtin_apis([f"keras_{backend}"])
        }
        assert {n.removeprefix("keras.") for n in tensorflow} == names
