"""The real adapters on a few cases: skipped with a reason where a framework is not installed.

These pin the behaviours klconf exists to show (each must come out with the right verdict and an
explanation, from the declared conventions and the expectations manifests, not from this file).
"""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from conformance import cases, expectations, frameworks, gradients, runner


@pytest.fixture(scope="module")
def corpus():
    return {c.id: c for c in cases.load_cases()}


@pytest.fixture(scope="module")
def manifest(corpus):
    return expectations.load(None, list(corpus.values()), frameworks.builtin_apis())


def api(name):
    found = next(a for a in frameworks.builtin_apis() if a.name == name)
    _importable(found.framework)
    if found.missing():
        pytest.skip(found.missing())
    return found


def _importable(framework: str) -> None:
    """Skip unless the framework imports here (not installed, or refusing this process: paddle after tensorflow)."""
    try:
        frameworks.binding(framework).handle()
    except frameworks.Unavailable as exc:
        pytest.skip(str(exc))


def check(corpus, manifest, case, name, dtype="float32", **options):
    a = api(name)
    opts = next(o for o in a.options if all(o.get(k) == v for k, v in options.items()))
    return manifest.apply(runner.run_check(runner.Check(corpus[case], a, tuple(opts.items()), "cpu", dtype)))


@pytest.mark.parametrize("framework", frameworks.FRAMEWORKS)
def test_every_api_passes_the_forum_and_canonical_cases(corpus, manifest, framework):
    _importable(framework)
    apis = [a for a in frameworks.builtin_apis([framework]) if not a.missing()]
    planned = runner.plan(
        [corpus["forum-example"], corpus["dirichlet-8x5"]], apis, devices=["cpu"], dtypes=["float32", "float64"]
    )
    records = [manifest.apply(runner.run_check(c)) for c in planned]
    # a failure explained by cases/expectations (e.g. MLX's float64 exp) is an xfail; anything else is new
    bad = [(r.check_id, r.verdict, r.message) for r in records if r.verdict not in ("pass", "unsupported", "xfail")]
    assert bad == []
    assert all(r.framework_version for r in records)


def test_torch_mean_is_a_quarter_of_the_kl_on_the_forum_example(corpus, manifest):
    rec = check(
        corpus, manifest, "forum-example", "torch.nn.functional.kl_div", "float64", reduction="mean", log_target=False
    )
    assert rec.verdict == "pass"
    assert rec.observed == pytest.approx(0.07161558603020723 / 4, rel=1e-12)
    assert any("'mean' divides the total loss by both the batch size and the support size" in w for w in rec.warnings)


def test_torch_batchmean_on_1d_input_divides_by_the_classes(corpus, manifest):
    rec = check(
        corpus, manifest, "one-row-1d", "torch.nn.functional.kl_div", "float64", reduction="batchmean", log_target=False
    )
    kl = corpus["one-row-1d"].expected["kl_per_row"]
    assert rec.verdict == "pass" and rec.observed == pytest.approx(kl / 3, rel=1e-12)


@pytest.mark.parametrize(
    "name, options, verdict",
    [
        ("torch.nn.functional.kl_div", {"log_target": False, "reduction": "none"}, "xfail"),
        ("optax.kl_divergence", {}, "xfail"),
        ("keras.losses.kl_divergence", {}, "pass"),
        ("jax.scipy.special.rel_entr", {}, "pass"),
        ("scipy.special.rel_entr", {}, "pass"),
        ("paddle.nn.functional.kl_div", {"log_target": False, "reduction": "none"}, "pass"),  # target <= 0 gives 0
        ("mlx.nn.losses.kl_div_loss", {"reduction": "none"}, "xfail"),  # log-probability targets: exp(-inf) * -inf
        ("keras.losses.kl_divergence[jax]", {}, "pass"),
        ("keras.losses.kl_divergence[torch]", {}, "pass"),
    ],
)
def test_zero_in_both_p_and_q(corpus, manifest, name, options, verdict):
    rec = check(corpus, manifest, "zero-both", name, **options)
    assert rec.verdict == verdict, rec.message
    if verdict == "xfail":
        assert rec.extra["failed_as"] == "fail" and rec.kind == "nan" and rec.reason


@pytest.mark.parametrize(
    "name, options",
    [
        ("torch.nn.functional.kl_div", {"log_target": True, "reduction": "sum"}),
        ("optax.losses.kl_divergence_with_log_targets", {}),
        ("paddle.nn.functional.kl_div", {"log_target": True, "reduction": "sum"}),
        ("mlx.nn.losses.kl_div_loss", {"reduction": "sum"}),
    ],
)
def test_log_targets_are_nan_wherever_p_has_a_zero(corpus, manifest, name, options):
    rec = check(corpus, manifest, "zeros-in-p", name, **options)
    assert rec.verdict == "xfail" and rec.kind == "nan"
    assert "zero_p=nan" in check(corpus, expectations.Manifest({}, []), "zeros-in-p", name, **options).diagnosis


def test_keras_clips_and_returns_a_finite_kl_where_the_kl_is_infinite(corpus, manifest):
    rec = check(corpus, manifest, "zeros-in-q", "keras.losses.kl_divergence", "float32")
    assert rec.verdict == "pass" and "clip=[1.19209e-07" not in rec.convention and "clip=[1e-07, 1]" in rec.convention
    assert np.isfinite(rec.observed[0]) and np.isinf(corpus["zeros-in-q"].expected["kl_per_row"][0])


def test_gradients_run_on_every_framework_with_autodiff(corpus):
    available = [f for f in ("torch", "jax", "tensorflow") if importlib.util.find_spec(f)]
    if not available:
        pytest.skip("no framework with automatic differentiation is installed")
    apis = [a for a in frameworks.builtin_apis(available) if not a.missing()]
    planned = gradients.plan([corpus["dirichlet-8x5"]], apis, devices=["cpu"], dtypes=["float64"])
    records = [gradients.run_gradient_check(c) for c in planned]
    assert {r.framework for r in records} == set(available)
    failing = [(r.check_id, r.message) for r in records if r.verdict != "pass"]
    assert failing == []


def test_a_jax_gradient_is_compiled_once_per_shape_for_every_case_of_that_shape(corpus):
    """jax.jit of jax.grad compiles per input shape; klconf differentiates one function per API call and
    options, so a case of a shape already seen reuses its compile (the API is traced, so called from Python,
    only for a new shape)."""
    import dataclasses

    _importable("jax")
    base = next(a for a in frameworks.builtin_apis(["jax"]) if a.differentiable and not a.missing())
    traced = []

    def call(fw, p, q, options, weights):
        traced.append(np.shape(p))
        return base.call(fw, p, q, options, weights)

    counting = dataclasses.replace(base, name=f"{base.name}.counted", call=call)
    options = tuple(base.options[0].items())
    seen = []
    for case in ("canonical-2x3", "zeros-in-p", "dirichlet-8x5", "zero-both"):
        check = gradients.GradientCheck(corpus[case], counting, options, "cpu", "float32", base.differentiable[0])
        assert gradients.run_gradient_check(check).verdict in ("pass", "fail")  # a value came back
        seen.append(len(traced))
    assert seen == [1, 1, 2, 2], seen


def _zeroes_its_weights(fw, p, q, options, w):
    """Per-row KL times the weights, then the weights it was given zeroed in place (a misbehaving API)."""
    rows = (fw.torch.xlogy(p, p) - fw.torch.xlogy(p, q)).sum(-1) * w.clone()
    w.mul_(0)
    return rows


def test_an_api_that_writes_into_its_weights_cannot_change_a_later_checks_weights(corpus):
    """The checks of one shape share the function they differentiate, not the weights they feed: an API
    that zeroes the weights it was given leaves the next check's weights as they should be."""
    from conformance.conventions import Convention

    _importable("torch")
    api = frameworks.Api(
        name="fake.torch.zeroes_its_weights",
        framework="torch",
        call=_zeroes_its_weights,
        convention=lambda o: Convention(
            arguments=("p", "q"), p_argument="p", input_space=("prob", "prob"), reduction="per_row"
        ),
        options=({"sample_weight": "per_row"},),
        dtypes=("float64",),
        devices=("cpu",),
        differentiable=("q",),
    )
    options = tuple(api.options[0].items())
    first, later = (
        gradients.run_gradient_check(gradients.GradientCheck(corpus[case], api, options, "cpu", "float64", "q"))
        for case in ("canonical-2x3", "canonical-2x3")
    )
    assert first.verdict == "pass", first.message
    assert later.verdict == "pass" and later.observed == first.observed, later.message


def test_paddle_batchmean_divides_by_the_first_dimension_like_torch(corpus, manifest):
    rec = check(
        corpus,
        manifest,
        "one-row-1d",
        "paddle.nn.functional.kl_div",
        "float64",
        reduction="batchmean",
        log_target=False,
    )
    kl = corpus["one-row-1d"].expected["kl_per_row"]
    assert rec.verdict == "pass" and rec.observed == pytest.approx(kl / 3, rel=1e-12)


def test_mlx_float64_carries_a_float32_sized_error_and_float32_passes(corpus, manifest):
    rec = check(corpus, manifest, "dirichlet-8x5", "mlx.nn.losses.kl_div_loss", "float64", reduction="sum")
    assert rec.verdict == "xfail" and rec.extra["expectation"]["id"].startswith("mlx-cpu-exp-is-float32-accurate")
    assert 1e-9 < rec.rel_error < 1e-6  # float32-sized, far above float64's tolerance
    assert (
        check(corpus, manifest, "dirichlet-8x5", "mlx.nn.losses.kl_div_loss", "float32", reduction="sum").verdict
        == "pass"
    )


def _in_a_fresh_interpreter(code: str, env: dict | None = None, timeout: int = 300) -> str:
    """What `code` prints, run by a new Python (a framework's process-wide state, imports and caches start
    empty); the test fails with its error output if it does not exit 0."""
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_paddle_refuses_a_process_that_imported_tensorflow_first():
    """paddle 3.3.1 imported after tensorflow 2.21 segfaults: the binding must skip, never crash the worker."""
    for module in ("paddle", "tensorflow"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")
    probe = (
        "import tensorflow\nfrom conformance import frameworks\n"
        "try:\n    frameworks.binding('paddle').handle()\nexcept frameworks.Unavailable as exc:\n    print(exc)"
    )
    assert "cannot be imported after tensorflow" in _in_a_fresh_interpreter(probe, timeout=600)


@pytest.mark.parametrize("setting", ["folder", "off", "jax's own"])
def test_jax_compiles_into_klconfs_cache_folder_unless_caches_are_off(tmp_path, setting):
    pytest.importorskip("jax")
    env = {k: v for k, v in os.environ.items() if k not in ("KLCONF_CACHE_DIR", "JAX_COMPILATION_CACHE_DIR")}
    env["KLCONF_CACHE_DIR"] = "off" if setting == "off" else str(tmp_path / "klconf")
    if setting == "jax's own":
        env["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path / "own")
    code = (
        "import jax.numpy as jnp, numpy as np\n"
        "from conformance import frameworks\n"
        "fw = frameworks.binding('jax').handle()\n"
        "jnp.log(jnp.asarray(np.ones(7, np.float32))).block_until_ready()\n"
        "print(fw.jax.config.jax_compilation_cache_dir or '')\n"
    )
    printed = _in_a_fresh_interpreter(code, env)
    chosen = printed.strip().splitlines()[-1] if printed.strip() else ""
    if setting == "folder":
        assert chosen == str(tmp_path / "klconf" / "jax")
        assert any((tmp_path / "klconf" / "jax").iterdir()), "an eager op's compile was not cached"
    elif setting == "off":
        assert chosen == "" and not (tmp_path / "klconf").exists()
    else:
        assert chosen == str(tmp_path / "own")


def test_feeding_jax_and_reading_its_output_back_compile_no_jax_program():
    """Inputs are cast in NumPy and put on the device, outputs read back and widened in NumPy (bfloat16
    included): a JAX program there would compile once per shape and dtype, on top of the API's own."""
    pytest.importorskip("jax")
    env = {**os.environ, "KLCONF_CACHE_DIR": "off"}
    code = (
        "import jax, numpy as np\n"
        "from conformance import frameworks\n"
        "b = frameworks.binding('jax'); fw = b.handle()\n"
        "traced = []\n"
        "jax.monitoring.register_event_duration_secs_listener(\n"
        "    lambda event, duration, **kw: traced.append(event) if event.endswith('jaxpr_trace_duration') else None)\n"
        "for n, dtype in enumerate(('bfloat16', 'float16', 'float32', 'float64')):\n"
        "    values = np.linspace(0.1, 0.9, 3 * (n + 2)).reshape(3, n + 2)\n"
        "    with b.call_context(fw, dtype, 'cpu'):\n"
        "        back, kind = b.to_numpy(fw, b.to_native(fw, values, dtype, 'cpu'))\n"
        "    assert kind == dtype and back.dtype == np.float64, (kind, back.dtype)\n"
        "    assert np.array_equal(back, values.astype(getattr(fw.jnp, dtype)).astype(np.float64))\n"
        "print('traced', len(traced))\n"
    )
    printed = _in_a_fresh_interpreter(code, env)
    assert printed.strip().splitlines()[-1] == "traced 0", printed
