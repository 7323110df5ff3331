"""The distribution runner on fake NumPy libraries with known behaviour and planted bugs (no framework needed)."""

import importlib.util
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest

from conformance.distributions import libraries, runner
from conformance.distributions.cases import load_cases
from conformance.distributions.families import Constructor
from conformance.frameworks import Unavailable


class Normal:
    def __init__(self, loc, scale):
        self.loc, self.scale = loc, scale


class Laplace(Normal):
    pass


class Exponential:
    def __init__(self, rate):
        self.rate = rate


def _normal_kl(p, q, scale=1.0):
    var = (p.scale / q.scale) ** 2
    return scale * 0.5 * (var + ((p.loc - q.loc) / q.scale) ** 2 - 1 - np.log(var))


def fake(name, kl=_normal_kl, registry=((Normal, Normal),)):
    """A library on the NumPy binding: Normal||Normal registered, Laplace defined but not registered."""
    table = {(a, b): kl for a, b in registry}
    handle = SimpleNamespace(
        dist=SimpleNamespace(Normal=Normal, Laplace=Laplace, Exponential=Exponential),
        kl=lambda p, q: table[type(p), type(q)](p, q),
        lookup=lambda a, b: table.get((a, b)),
        registry=lambda: dict(table),
        diag_embed=None,
    )
    return libraries.Library(
        name=name,
        key="fake",
        framework="numpy",
        modules=("numpy",),
        load=lambda: handle,
        versions=lambda h: {"fake": "1.0"},
        constructors={
            "normal": Constructor("Normal", {"loc": "loc", "scale": "scale"}),
            "laplace": Constructor("Laplace", {"loc": "loc", "scale": "scale"}),
            "exponential": Constructor("Exponential", {"rate": "rate"}),
        },
    )


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    path = tmp_path_factory.mktemp("cases") / "fake.yaml"
    path.write_text(
        textwrap.dedent("""
        distribution_cases:
          - id: normal
            description: normals, batch of 3 with Q broadcast
            p: {family: normal, loc: [0.0, 1.5, -2.0], scale: [1.0, 0.5, 3.0]}
            q: {family: normal, loc: 0.5, scale: [2.0, 0.5, 1.0]}
          - id: laplace
            description: a pair the fake does not register
            p: {family: laplace, loc: [0.0, 1.0], scale: 1.0}
            q: {family: laplace, loc: 0.0, scale: 2.0}
          - id: gamma
            description: a family the fake does not have
            p: {family: gamma, concentration: [1.0, 2.0], rate: 1.0}
            q: {family: gamma, concentration: 1.0, rate: 2.0}
        """)
    )
    return {c.id: c for c in load_cases(path)}


def run(case, library, dtype="float64"):
    return runner.run_check(runner.DistributionCheck(case, library, "cpu", dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_an_exact_library_passes_with_errors_and_tolerance_recorded(cases, dtype):
    rec = run(cases["normal"], fake(f"fake.exact.{dtype}"), dtype)
    assert rec.verdict == "pass", rec.message
    assert rec.check == "distribution" and rec.framework == "numpy" and rec.output_dtype == dtype
    assert rec.tolerance > 0 and rec.headroom < 1 and rec.abs_error is not None and rec.ulp_error is not None
    assert len(rec.expected) == 3 and len(rec.observed) == 3 and rec.framework_version == {"fake": "1.0"}


def test_a_slightly_wrong_library_fails_with_a_message_naming_pair_values_and_inputs(cases):
    rec = run(cases["normal"], fake("fake.scaled", kl=lambda p, q: _normal_kl(p, q, 1.0001)), "float32")
    assert rec.verdict == "fail" and rec.kind == "value"
    assert rec.message.startswith("normal||normal via Normal || Normal: ") and "expected" in rec.message
    assert "[inputs there: p=normal(loc=" in rec.message and "reproduce: pytest" in rec.diagnosis


def test_nan_and_inf_where_the_value_is_finite_fail_by_kind(cases):
    rec = run(cases["normal"], fake("fake.nan", kl=lambda p, q: _normal_kl(p, q) * np.nan))
    assert (rec.verdict, rec.kind) == ("fail", "nan")
    rec = run(cases["normal"], fake("fake.inf", kl=lambda p, q: _normal_kl(p, q) + np.inf))
    assert (rec.verdict, rec.kind) == ("fail", "inf")


def test_a_wrong_output_shape_fails(cases):
    rec = run(cases["normal"], fake("fake.shape", kl=lambda p, q: _normal_kl(p, q).sum()))
    assert (rec.verdict, rec.kind) == ("fail", "shape")


def test_unregistered_pairs_and_missing_families_are_unsupported_with_reasons(cases):
    rec = run(cases["laplace"], fake("fake.registry"))
    assert rec.verdict == "unsupported" and rec.reason == "fake.registry registers no KL for Laplace || Laplace"
    rec = run(cases["gamma"], fake("fake.families"))
    assert rec.verdict == "unsupported" and rec.reason == "fake.families has no gamma distribution"


def test_not_implemented_is_unsupported_and_other_exceptions_are_errors(cases):
    def declines(p, q):
        raise NotImplementedError("not for these parameters")

    def breaks(p, q):
        raise ValueError("broken")

    rec = run(cases["normal"], fake("fake.declines", kl=declines))
    assert rec.verdict == "unsupported" and "raises NotImplementedError for these parameters" in rec.reason
    rec = run(cases["normal"], fake("fake.breaks", kl=breaks))
    assert (rec.verdict, rec.kind, rec.message) == ("error", "exception", "ValueError: broken")
    assert "traceback" in rec.extra


def test_an_unimportable_library_is_a_skip_with_its_reason(cases):
    def load():
        raise Unavailable("fakelib 2.0 does not work with numpy 9")

    lib = libraries.Library(
        name="fake.unimportable",
        key="fake",
        framework="numpy",
        modules=("numpy",),
        load=load,
        versions=lambda h: {},
        constructors=fake("x").constructors,
    )
    rec = run(cases["normal"], lib)
    assert rec.verdict == "skip" and rec.reason == "fakelib 2.0 does not work with numpy 9"


def test_the_plan_covers_case_library_device_dtype_and_drops_half_precision(cases):
    checks = runner.plan(
        cases.values(), [fake("a"), fake("b")], devices=("cpu", "cuda"), dtypes=("float16", "float32", "float64")
    )
    assert len(checks) == 3 * 2 * 2 * 2 and {c.dtype for c in checks} == {"float32", "float64"}


def test_sensitivity_is_the_sum_of_relative_parameter_derivatives(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "distribution_cases:\n  - {id: s, description: s, p: {family: normal, loc: 0.0, scale: [1.0]},"
        " q: {family: normal, loc: 0.0, scale: 2.0}}\n"
    )
    case = load_cases(path)[0]
    # KL = log(sq/sp) + sp^2/(2 sq^2) - 1/2: sp dKL/dsp = -1 + 1/4, sq dKL/dsq = 1 - 1/4; zero locations skipped
    assert runner.sensitivity(case) == pytest.approx([1.5], rel=1e-12)


def test_tolerance_overrides_need_a_reason_and_are_recorded(cases):
    from conformance.frameworks import Tolerance

    with pytest.raises(ValueError):
        Tolerance(10.0, " ")
    lib = fake("fake.override", kl=lambda p, q: _normal_kl(p, q, 1.00001))
    lib = libraries.Library(
        **{
            **lib.__dict__,
            "tolerances": {("normal", "normal", "float32"): Tolerance(1000.0, "a documented float32 shortcut")},
        }
    )
    rec = run(cases["normal"], lib, "float32")
    assert rec.verdict == "pass" and rec.tolerance_override == "x1000: a documented float32 shortcut"


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_the_jax_side_imports_or_says_which_versions_conflict():
    lib = next(lib for lib in libraries.LIBRARIES if lib.key == "tfp_jax")
    try:
        libraries.handle(lib)
    except Unavailable as exc:
        text = str(exc)
        assert "tensorflow" in text or "jax" in text
        if "pytype_aval_mappings" in text:
            assert "does not work with jax" in text and "tox -e jaxdist" in text
