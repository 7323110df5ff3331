"""The two gradient checks of one API call (d/dP and d/dQ of one case, options, dtype and device) share one
backward pass when the second runs right after the first (conformance/gradients.py): the records are the
ones two separate calls give, and a shared call that raises costs nothing but itself."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from conformance import cases, gradients, results
from conformance.conventions import Convention
from conformance.frameworks import Api

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")

COMPARED = ("verdict", "observed", "abs_error", "output_dtype", "kind", "message", "warnings")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def corpus():
    return {c.id: c for c in cases.load_cases()}


def _api(calls: list, refuses_both: bool = False, warns: bool = False) -> Api:
    """Per-row KL(P||Q) in torch, P and Q both differentiable; it counts its calls in `calls`."""

    def call(fw, p, q, options, weights):
        calls.append((p.requires_grad, q.requires_grad))
        if refuses_both and p.requires_grad and q.requires_grad:
            raise RuntimeError("this API differentiates one argument at a time")
        if warns:
            warnings.warn("a warning from the API", UserWarning, stacklevel=1)
            fw.torch.set_default_dtype(fw.torch.float64)  # and a process-wide setting changed (klconf restores it)
        return (fw.torch.xlogy(p, p) - fw.torch.xlogy(p, q)).sum(-1)

    return Api(
        name="fake.torch.two_gradients",
        framework="torch",
        call=call,
        convention=lambda o: Convention(
            arguments=("p", "q"), p_argument="p", input_space=("prob", "prob"), reduction="per_row"
        ),
        options=({},),
        dtypes=("float32", "float64"),
        devices=("cpu",),
        differentiable=("p", "q"),
    )


def _pair(api: Api, case, dtype: str = "float64") -> tuple[gradients.GradientCheck, gradients.GradientCheck]:
    first, second = (gradients.GradientCheck(case, api, (), "cpu", dtype, wrt) for wrt in api.differentiable)
    return first, second


def _fields(record) -> dict:
    return {name: getattr(record, name) for name in COMPARED}


@pytest.mark.parametrize("case", ["canonical-2x3", "zeros-in-q", "dirichlet-8x5"])
def test_a_pair_shares_one_call_and_records_what_two_calls_give(corpus, case):
    calls: list = []
    api = _api(calls)
    first, second = _pair(api, corpus[case])
    alone = [gradients.run_gradient_check(c) for c in (first, second)]  # no look-ahead: one call each
    assert calls == [(True, False), (False, True)]
    calls.clear()
    shared = [gradients.run_gradient_check(first, second), gradients.run_gradient_check(second, None)]
    assert calls == [(True, True)], "both gradients should come from one call"
    for one, other in zip(alone, shared):
        assert _fields(other) == _fields(one), other.check_id


def test_a_shared_call_that_raises_falls_back_to_one_call_each(corpus):
    calls: list = []
    api = _api(calls, refuses_both=True)
    first, second = _pair(api, corpus["canonical-2x3"])
    alone = [gradients.run_gradient_check(c) for c in (first, second)]
    calls.clear()
    records = [gradients.run_gradient_check(first, second), gradients.run_gradient_check(second, None)]
    assert calls == [(True, True), (True, False), (False, True)]
    assert [_fields(r) for r in records] == [_fields(r) for r in alone]
    assert all(r.verdict in ("pass", "fail") and r.kind != "error" for r in records)  # values, not the refusal


def test_only_the_sibling_run_next_is_served(corpus):
    """A look-ahead at another case, dtype or argument order computes nothing ahead; a kept gradient that
    its check does not claim next is dropped."""
    calls: list = []
    api = _api(calls)
    first, second = _pair(api, corpus["canonical-2x3"])
    other_case, _ = _pair(api, corpus["dirichlet-8x5"])
    other_dtype = dataclasses.replace(second, dtype="float32")
    for upcoming in (other_case, other_dtype, first):
        gradients.run_gradient_check(first, upcoming)
    assert calls == [(True, False)] * 3
    calls.clear()
    gradients.run_gradient_check(first, second)
    gradients.run_gradient_check(other_case, None)  # the pair's second check did not come next
    gradients.run_gradient_check(second, None)
    assert calls == [(True, True), (True, False), (False, True)]


def test_the_sibling_gets_the_shared_calls_warnings_and_side_effects(corpus):
    calls: list = []
    api = _api(calls, warns=True)
    first, second = _pair(api, corpus["canonical-2x3"])
    records = [gradients.run_gradient_check(first, second), gradients.run_gradient_check(second, None)]
    assert len(calls) == 1
    assert [r.warnings for r in records] == [["UserWarning: a warning from the API"]] * 2
    effects = [r.extra.get("side_effects") for r in records]
    assert effects[0] and effects[1] == effects[0] and "default_dtype" in str(effects[0]), effects


def test_joint_gradients_equal_separate_ones_bit_for_bit_on_every_builtin_binding(corpus):
    """`Binding.gradients` promises each gradient as `Binding.gradient` gives it alone: held on every built-in
    binding that offers it and is installed, in every dtype, on the corpus's small cases."""
    from conformance import frameworks

    checked = 0
    for name in frameworks.FRAMEWORKS:
        b = frameworks.binding(name)
        if b.gradients is None or b.available() is not None:
            continue
        apis = [a for a in frameworks.builtin_apis([name]) if len(a.differentiable) > 1 and not a.missing()]
        for api in apis:
            for case_id in ("canonical-2x3", "zeros-in-p"):
                for dtype in ("float16", "float32", "float64"):
                    if dtype in api.dtypes:
                        joint, alone = _joint_and_alone(b, api, corpus[case_id], dtype)
                        for j, a in zip(joint, alone):
                            np.testing.assert_array_equal(j, a, err_msg=f"{api.name} {case_id} {dtype}")
                        checked += 1
    if not checked:
        pytest.skip("no installed framework offers joint gradients")


def _joint_and_alone(b, api: Api, case, dtype: str) -> tuple[list, list]:
    """Both gradients of the API's first options on `case`: from one `gradients` call, and one `gradient` each."""
    from conformance.runner import declared, fed_arguments

    fw, options = b.handle(), dict(api.options[0])
    conv = declared(gradients.GradientCheck(case, api, tuple(options.items()), "cpu", dtype, api.differentiable[0]))
    native = [b.to_native(fw, a, dtype, "cpu") for a in fed_arguments(case, conv, dtype)]
    indices = tuple(conv.arguments.index(w) for w in api.differentiable)

    def fn(x, y):
        return api.call(fw, x, y, options, None)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (torch's 'mean', optax's deprecations)
        joint = [b.to_numpy(fw, g)[0] for g in b.gradients(fw, fn, native, indices)]
        alone = [b.to_numpy(fw, b.gradient(fw, fn, native, i))[0] for i in indices]
    return joint, alone


def _logged_call(fw, p, q, options, weights):
    """LOGGED's call: per-row KL, with which arguments require a gradient appended to $KLCONF_TEST_CALLS."""
    with open(os.environ["KLCONF_TEST_CALLS"], "a") as log:
        log.write(f"{p.requires_grad} {q.requires_grad}\n")
    return (fw.torch.xlogy(p, p) - fw.torch.xlogy(p, q)).sum(-1)


LOGGED = dataclasses.replace(_api([]), name="fake.torch.logged", call=_logged_call)


def _klconf_run(tmp_path: Path, name: str, *extra: str, workers: str = "0") -> tuple[results.Run, list[str]]:
    calls = tmp_path / f"{name}.calls"
    argv = ["run", "--api", "tests.test_shared_gradients:LOGGED", "--only-api", "--check", "gradient"]
    argv += ["-k", "canonical or zeros", "--dtype", "float32", "--dtype", "float64", "--no-report", "--no-progress"]
    argv += ["--expectations", "none", "-n", workers, "--out", str(tmp_path / name), *extra]
    env = {**os.environ, "KLCONF_CACHE_DIR": "off", "KLCONF_TEST_CALLS": str(calls)}
    proc = subprocess.run(
        [sys.executable, "-m", "conformance", *argv], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode in (0, 1), proc.stdout[-2000:] + proc.stderr[-2000:]
    return results.read(tmp_path / name / "results.jsonl"), calls.read_text().splitlines()


def test_klconf_run_makes_one_call_per_pair_and_records_what_the_standard_protocol_does(tmp_path):
    """The lean protocol tells each check which one its process runs next, with one worker or several; the
    standard protocol (here through --setup-show) does not, and so calls once per check: same records."""
    standard, standard_calls = _klconf_run(tmp_path, "standard", "--", "--setup-show")
    assert standard_calls and all(c in ("True False", "False True") for c in standard_calls)
    for workers in ("0", "2"):
        lean, lean_calls = _klconf_run(tmp_path, f"lean-{workers}", workers=workers)
        assert len(lean.records) == len(standard.records) == len(standard_calls) > 0
        shared = lean_calls.count("True True")
        assert 2 * shared + (len(lean_calls) - shared) == len(lean.records), lean_calls  # a call per check served
        if workers == "0":
            assert shared == len(lean_calls) == len(lean.records) // 2, lean_calls
        else:  # (pytest-xdist may hand a pair's two checks to two workers where it splits the queue)
            assert shared >= len(lean.records) // 4, lean_calls
        mine = {r.check_id: tuple(getattr(r, f) for f in COMPARED) for r in lean.records}
        assert mine == {r.check_id: tuple(getattr(r, f) for f in COMPARED) for r in standard.records}
