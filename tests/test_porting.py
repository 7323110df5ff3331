"""Porting driven by conventions: NumPy black boxes with known conventions get verified SciPy equivalents
without any per-API code; wrong recipes and sources that depart from their convention are caught with
the field that explains it; records, the runner module, the report's table and `klconf port`.

Needs NumPy and SciPy only (the SciPy target); tests/test_porting_frameworks.py covers the frameworks."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conformance import results
from conformance.cases import load_cases
from conformance.frameworks import Api, builtin_apis
from conformance.porting import compose as compose_mod
from conformance.porting import records as records_mod
from conformance.porting.port import port
from conformance.porting.recipe import recipe_for
from conformance.porting.records import porting_record
from conformance.porting.verify import verify
from conformance.porting.vocabulary import Term, vocabulary
from conformance.report import aggregate, model, write_report
from tests import fakes_conventions as fc

pytest.importorskip("scipy")

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "KLCONF_CACHE_DIR": "off", "PYTHONPATH": str(ROOT)}
SMALL = (
    "canonical-2x3",
    "zeros-in-p",
    "zeros-in-q",
    "zero-both",
    "one-row-1d",
    "sequence-2x3x5",
    "unnormalized-rows",
    "broadcast-1-vs-4",
    "masked-logits",
    "empty-batch",
    "nan-entries",
)
DTYPES = ("float32", "float64")
WEIGHTED = ({"sample_weight": "per_row"},)


@pytest.fixture(scope="module")
def cases():
    return [c for c in load_cases() if c.id in SMALL]


def _fake(name, options=({},), **truth) -> Api:
    return fc.make(f"fake.port.{name}", options=options, dtypes=DTYPES, **truth)


# Each truth exercises convention fields; `shows` is what its SciPy equivalent must contain because of them.
TRUTHS = [
    (
        "batchmean-nan-at-zeros",
        dict(zero_both="nan"),
        ({},),
        ["count = shape[0]", "scipy.special.xlogy(p, p) - p * np.log(q)"],
    ),
    (
        "log-both-nan-at-p-zero",
        dict(spaces=("log_prob", "log_prob"), zero_p="nan", zero_both="nan", reduction="none", class_axis=None),
        ({},),
        ["term = p * (np.log(p) - np.log(q))", "out = term"],
    ),
    (
        "logits-q-class-axis-1",
        dict(spaces=("logits", "prob"), reduction="mean_batch", batch_divisor="rows", class_axis=1),
        ({},),
        [
            "axis = 1 if len(shape) > 1 else 0",
            "q = q / np.sum(q, axis=axis, keepdims=True)",
            "count = int(np.prod(shape[:axis] + shape[axis + 1:]))",
        ],
    ),
    (
        "normalizing-axis-0",
        dict(p_index=0, spaces=("prob", "prob"), reduction="per_row", class_axis=0, normalizes=True),
        ({},),
        ["axis = 0", "p, q = p / np.sum(p, axis=axis, keepdims=True)", "rows = np.sum(term, axis=axis)"],
    ),
    (
        "clipped-weighted-keras-like",
        dict(
            p_index=0,
            spaces=("prob", "prob"),
            reduction="mean_weighted",
            batch_divisor="batch",
            clip=1e-7,
            zero_q="finite",
        ),
        WEIGHTED,
        [
            "np.clip(p, 1e-07, 1.0), np.clip(q, 1e-07, 1.0)",
            "rows = rows * w",
            "np.sum(rows) / np.sum(w) if len(shape) > 1 else np.sum(rows)",
        ],
    ),
    (
        "nan-where-q-zero",
        dict(p_index=0, spaces=("prob", "prob"), reduction="per_row", zero_q="nan"),
        ({},),
        ["np.where((p > 0) & (q == 0), np.nan, term)"],
    ),
    (
        "generalized-sum",
        dict(p_index=0, spaces=("prob", "prob"), elementwise="p*log(p/q)-p+q", reduction="sum", class_axis=None),
        ({},),
        ["scipy.special.kl_div(p, q)", "out = np.sum(term)"],
    ),
]


@pytest.mark.parametrize("name,truth,options,shows", TRUTHS, ids=[t[0] for t in TRUTHS])
def test_each_convention_gets_a_verified_scipy_equivalent(cases, name, truth, options, shows):
    result = port(_fake(name, options, **truth), options[0], "scipy", cases)
    data = result.to_json()
    assert result.verdict == "pass", data["differs_on"]
    in_domain = {c.id for c in cases if not c.out_of_domain}
    assert data["verified_cases"] == len(in_domain) and data["differs_on"] == []
    for text in shows:
        assert text in result.code, f"{text!r} missing from\n{result.code}"


def test_a_field_with_no_matching_spelling_is_masked_and_others_are_not(cases):
    result = port(
        _fake("nan-where-q-zero", p_index=0, spaces=("prob", "prob"), reduction="per_row", zero_q="nan"),
        {},
        "scipy",
        cases,
    )
    assert result.equivalent.masked == ["zero_q"]
    plain = port(_fake("plain", p_index=0, spaces=("prob", "prob"), reduction="per_row"), {}, "scipy", cases)
    assert plain.equivalent.masked == [] and "scipy.special.rel_entr(p, q)" in plain.code


def test_composition_reads_conventions_not_names(cases):
    """Two black boxes with one convention get the same code whatever they are called; a different
    reduction changes exactly the reduction lines."""
    a = port(_fake("alpha", reduction="mean_all", class_axis=None), {}, "scipy", cases)
    b = port(_fake("beta", reduction="mean_all", class_axis=None), {}, "scipy", cases)
    c = port(_fake("gamma", reduction="sum", class_axis=None), {}, "scipy", cases)
    assert a.equivalent.expression == b.equivalent.expression
    assert _body(a.equivalent.code) == _body(b.equivalent.code)
    assert "count = int(np.prod(shape))" in a.code and "/ count" in a.equivalent.expression
    assert "count" not in c.equivalent.expression and "out = np.sum(term)" in c.equivalent.expression


def _body(code: str) -> list[str]:
    return [line for line in code.splitlines() if "fake.port." not in line]


@pytest.mark.parametrize(
    "name,truth,options,shows",
    TRUTHS
    + [
        (
            "logits-p-mean-all",
            dict(p_index=0, spaces=("logits", "log_prob"), reduction="mean_all", class_axis=-1),
            ({},),
            [],
        ),
        ("dim0-weighted-ignored", dict(reduction="mean_batch", batch_divisor="dim0", uses_weights=False), WEIGHTED, []),
    ],
    ids=[t[0] for t in TRUTHS] + ["logits-p-mean-all", "dim0-weighted-ignored"],
)
def test_tolerance_sizes_are_the_oracles(cases, name, truth, options, shows):
    """The float64 sizes a port's tolerance is built from equal the oracle's, on every case and dtype."""
    from conformance.porting.fed import broadcast_terms, source_call
    from conformance.porting.tolerance import sizes

    recipe = recipe_for(_fake(name, options, **truth), options[0])
    for case in cases:
        for dtype in DTYPES:
            fed = source_call(recipe, case, dtype)
            args = broadcast_terms(fed.args)
            exact, _ = recipe.candidate.predict(args, fed.weights)
            ours = sizes(recipe.candidate, args, fed.weights)
            assert ours.terms == exact.terms, (case.id, dtype)
            np.testing.assert_allclose(ours.magnitude, exact.magnitude, rtol=1e-12, err_msg=f"{case.id} {dtype}")
            np.testing.assert_allclose(ours.log_scale, exact.log_scale, rtol=1e-12, err_msg=f"{case.id} {dtype}")


def test_no_porting_module_names_a_builtin_api():
    sources = "\n".join(p.read_text() for p in (ROOT / "conformance" / "porting").glob("*.py"))
    named = [api.name for api in builtin_apis() if api.name in sources]
    assert named == []


def test_choose_term_prefers_exact_zeros_then_masks_the_fewest():
    recipe = recipe_for(_fake("chooser", zero_both="nan"), {})
    generic = list(vocabulary("scipy").generic_terms())
    term, masked = compose_mod.choose_term(recipe, generic)
    assert term.zeros == ("0", "nan", "inf") and masked == []
    only_rel_entr = [Term("rel_entr({p}, {q})", "p*log(p/q)", "0", "0", "inf", "test")]
    term, masked = compose_mod.choose_term(recipe, only_rel_entr)
    assert masked == ["zero_both"]
    code = compose_mod.compose(recipe, "scipy", only_rel_entr).code
    assert "np.where((p == 0) & (q == 0), np.nan, term)" in code


def _composed_wrongly(api: Api, **wrong):
    """An equivalent written from the recipe with `wrong` fields, verified as a port of the real one."""
    recipe = recipe_for(api, {})
    tampered = dataclasses.replace(recipe, candidate=dataclasses.replace(recipe.candidate, **wrong))
    equivalent = compose_mod.compose(tampered, "scipy")
    equivalent.recipe = recipe
    return equivalent


def test_a_wrong_recipe_differs_with_the_field_that_explains_it(cases):
    """An equivalent built with one field changed is caught on the cases that field matters for, and the
    reason names the field."""
    differs = {
        d["case"]: d["reason"]
        for d in verify(_composed_wrongly(_fake("nan", zero_both="nan"), zero_both="0"), cases).differs()
    }
    assert set(differs) == {"zero-both", "masked-logits"}  # the cases with p = q = 0
    assert "the scipy expression departs from the source's convention" in differs["zero-both"]
    assert "zero_both=0 (inferred nan)" in differs["zero-both"]

    api = _fake("dim0", reduction="mean_batch", batch_divisor="dim0", class_axis=-1)
    wrong = _composed_wrongly(api, batch_divisor="rows", class_axis=-1)
    differs = {d["case"]: d["reason"] for d in verify(wrong, cases).differs()}
    assert {"sequence-2x3x5", "one-row-1d"} <= set(differs)
    assert "batch_divisor=rows (inferred dim0)" in differs["sequence-2x3x5"]


def _misbehaving(code: str, name: str) -> compose_mod.Equivalent:
    """The right equivalent of a fake source, its code swapped for `code` (which defines `equivalent`)."""
    right = compose_mod.compose(recipe_for(_fake(name), {}), "scipy")
    return dataclasses.replace(right, code=code)


def test_snippets_differing_only_in_docstrings_and_comments_share_one_executed_function():
    """Many source calls compose one expression: their snippets run as one module, so a compiled target
    (jax.jit) compiles once per shape for all of them; any other difference is a module of its own."""
    body = "def equivalent(p, q):\n    {doc}return {value}  # {comment}\n"
    made = [
        _misbehaving(f'"""{doc}"""\n' + body.format(doc=f'"""{doc}"""\n    ', value=value, comment=doc), f"share-{i}")
        for i, (doc, value) in enumerate([("one source", "1.0"), ("another source", "1.0"), ("a third", "2.0")])
    ]
    first, second, third = (eq.function() for eq in made)
    assert first is second and first is not third
    assert (first(None, None), third(None, None)) == (1.0, 2.0)


def test_one_source_call_serves_every_target_and_its_inputs_are_read_only(cases, monkeypatch):
    """A source is ported to every other framework: its calls, the tolerance's sizes and the case's
    probabilities are computed once, not once per target; the arrays every target shares are read-only,
    so an equivalent that writes into its input differs there instead of changing what the next target gets."""
    from conformance.porting import fed as fed_mod

    calls = {"sizes": 0, "probabilities": 0}

    def counting(name):
        real = getattr(fed_mod, name)

        def counted(*args):
            calls[name] += 1
            return real(*args)

        return counted

    for name in calls:
        monkeypatch.setattr(fed_mod, name, counting(name))
    source = _fake("shared-source")
    right = compose_mod.compose(recipe_for(source, {}), "scipy")
    first = verify(right, cases)
    after_first = dict(calls)
    writes = dataclasses.replace(right, code=right.code.replace("p, q = np.asarray(p), np.asarray(q)", "p[...] = 0"))
    assert writes.code != right.code
    second = verify(writes, cases)
    assert calls["sizes"] == after_first["sizes"] > 0  # the sizes of the first target's comparisons serve the second
    assert {d["case"] for d in second.differs()} == set(first.verified())
    assert all("read-only" in d["reason"] for d in second.differs()), second.differs()
    assert verify(right, cases).verified() == first.verified()  # the shared inputs are as they were

    calls["probabilities"] = 0
    verify(compose_mod.compose(recipe_for(_fake("another-source"), {}), "scipy"), cases)
    assert calls["probabilities"] == 0  # a case's probabilities are the same for every source


@pytest.mark.parametrize(
    "body,reason",
    [
        (
            "    import time\n    time.sleep(30)",
            "the scipy equivalent did not return: the call did not return within 0.5 s",
        ),
        ("    raise KeyboardInterrupt('from the equivalent')", "the scipy equivalent raised KeyboardInterrupt"),
        ("    raise ValueError('no')", "the scipy equivalent raised ValueError: no"),
    ],
    ids=["hangs", "raises-a-base-exception", "raises"],
)
def test_an_equivalent_that_hangs_or_raises_differs_and_verification_goes_on(cases, body, reason):
    """Verification runs target-framework code: it gets the guard and time limit of every API call, so an
    equivalent that hangs on one case (MLX 0.32.4 on an empty batch) is a difference there, not a stuck run."""
    from conformance import isolation

    canonical = [c for c in cases if c.id in ("canonical-2x3", "zeros-in-p")]
    isolation.configure(0.5, None, hard=False)
    try:
        result = verify(_misbehaving(f"def equivalent(p, q):\n{body}\n", f"bad-{len(body)}"), canonical)
    finally:
        isolation.configure(isolation.DEFAULT_TIMEOUT, None, hard=False)
    differs = result.differs()
    assert {d["case"] for d in differs} == {"canonical-2x3", "zeros-in-p"}
    assert all(reason in d["reason"] for d in differs), differs


_NAN_AT_ZEROS = fc.Truth(p_index=0, spaces=("prob", "prob"), reduction="per_row", zero_both="nan")


def _flushing(fw, a, b, o, w):
    """NaN where p = q = 0, and subnormal inputs read as zero, as XLA on CPU reads them: the probes
    show no sign of it, the case with p = q = the smallest subnormal does (NaN instead of 0)."""
    tiny = np.finfo(np.asarray(a).dtype).tiny
    flush = [np.where(np.abs(x) < tiny, 0, x).astype(np.asarray(x).dtype) for x in (a, b)]
    return fc.compute(_NAN_AT_ZEROS, *flush, w)


FLUSHING = Api(
    name="fake.port.flushes_subnormals",
    framework="numpy",
    call=_flushing,
    convention=lambda o: _NAN_AT_ZEROS.convention(),
    dtypes=DTYPES,
    devices=("cpu",),
)
# What the runner test (`--klconf-api tests.test_porting:FAKES`) ports.
FAKES = [fc.make("fake.port.kl_div_batchmean", dtypes=DTYPES, zero_both="nan"), FLUSHING]


def test_a_source_that_departs_from_its_convention_is_a_failed_record_with_the_reason():
    subnormal = [c for c in load_cases() if c.id in ("tiny-probs-float32", "canonical-2x3")]
    rec = porting_record(FLUSHING, {}, "scipy", subnormal)
    assert rec.verdict == "fail" and rec.check == "porting" and rec.kind == "porting"
    (entry,) = rec.extra["differs_on"]
    assert entry["case"] == "tiny-probs-float32" and entry["dtypes"] == ["float32"]
    assert "the source departs from its inferred convention" in entry["reason"]
    assert "flushed to zero" in entry["reason"]
    assert rec.extra["verified_cases"] == 1
    assert results.schema_errors(rec.to_json()) == []


def _off_in_half(fw, a, b, o, w):
    """Exact in float32 and float64, half as much again in float16."""
    out = fc.compute(fc.Truth(), a, b, w)
    return out * np.float16(1.5) if np.asarray(a).dtype == np.float16 else out


OFF_IN_HALF = Api(
    name="fake.port.off_in_float16",
    framework="numpy",
    call=_off_in_half,
    convention=lambda o: fc.Truth().convention(),
    dtypes=("float16",) + DTYPES,
    devices=("cpu",),
)


def test_float16_is_checked_apart_and_does_not_decide_the_verdict(cases):
    result = port(OFF_IN_HALF, {}, "scipy", cases)
    data = result.to_json()
    assert result.verdict == "pass" and data["differs_on"] == []
    half = {e["case"]: e for e in data["float16"]["differs_on"]}
    assert "canonical-2x3" in half and half["canonical-2x3"]["dtypes"] == ["float16"]
    assert "the source departs from its inferred convention" in half["canonical-2x3"]["reason"]
    assert "In float16 (checked apart), differs on:" in result.code


def test_a_record_carries_the_contract_and_validates(cases):
    rec = porting_record(FAKES[0], {}, "scipy", cases)
    assert rec.verdict == "pass", rec.message
    assert rec.check_id == "porting-to-scipy::fake.port.kl_div_batchmean[]::cpu::float64+float32"
    assert (rec.case_id, rec.framework, rec.dtype) == ("porting-to-scipy", "numpy", "float64+float32")
    assert {"code", "expression", "verified_cases", "differs_on", "target_framework"} <= set(rec.extra)
    assert rec.extra["target_framework"] == "scipy" and rec.extra["differs_on"] == []
    assert "def equivalent(p, q):" in rec.extra["code"]
    assert results.schema_errors(rec.to_json()) == []
    broken = rec.to_json()
    del broken["extra"]["code"]
    assert results.schema_errors(broken), "a decided porting record without its code must not validate"


def test_a_missing_framework_is_a_skip_with_the_reason(cases, monkeypatch):
    monkeypatch.setattr(records_mod, "unavailable", lambda api, target: "jax is not installed")
    rec = porting_record(FAKES[0], {}, "jax", cases)
    assert rec.verdict == "skip" and "jax is not installed" in rec.reason and "needs both installed" in rec.reason
    assert results.schema_errors(rec.to_json()) == []


# --------------------------------------------------------------------------- the snippet on its own


_RUNNER = """
import importlib.abc, json, runpy, sys
import numpy as np

ALLOWED = {"numpy", "scipy"}
FRAMEWORKS = {"torch", "jax", "jaxlib", "tensorflow", "keras", "tf_keras", "optax", "scipy", "conformance", "tests"}

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FRAMEWORKS - ALLOWED:
            raise ImportError(f"{name} may not be imported by the snippet")
        return None

sys.meta_path.insert(0, Block())
equivalent = runpy.run_path(sys.argv[1])["equivalent"]
data = np.load(sys.argv[2])
out = {}
for key in sorted({k.rsplit("/", 1)[0] for k in data.files}):
    args = [data[f"{key}/p"], data[f"{key}/q"]] + ([data[f"{key}/w"]] if f"{key}/w" in data.files else [])
    value = np.asarray(equivalent(*args))
    out[key] = {"value": np.asarray(value, np.float64).tolist(), "dtype": str(value.dtype)}
print(json.dumps(out, allow_nan=True))
"""


def run_snippet(code: str, inputs: dict, tmp_path: Path, allowed: set) -> dict:
    """`equivalent` from `code`, run in a fresh interpreter where only NumPy and `allowed` import."""
    snippet, data, runner = tmp_path / "equivalent.py", tmp_path / "inputs.npz", tmp_path / "runner.py"
    snippet.write_text(code)
    np.savez(data, **{f"{key}/{name}": array for key, arrays in inputs.items() for name, array in arrays.items()})
    runner.write_text(_RUNNER.replace('{"numpy", "scipy"}', repr({"numpy"} | set(allowed))))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, str(runner), str(snippet), str(data)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {k: (np.asarray(v["value"], np.float64), v["dtype"]) for k, v in json.loads(proc.stdout).items()}


def imported_modules(code: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add((node.module or "").split(".")[0])
    return found


def test_snippet_reproduces_the_source_in_a_fresh_interpreter(cases, tmp_path):
    """The weighted, clipped black box: its SciPy snippet, run alone, returns the source's values."""
    from conformance.porting.verify import compare, source_call

    api = _fake(
        "alone",
        WEIGHTED,
        p_index=0,
        spaces=("prob", "prob"),
        reduction="mean_weighted",
        batch_divisor="batch",
        clip=1e-7,
        zero_q="finite",
    )
    result = port(api, WEIGHTED[0], "scipy", cases)
    assert imported_modules(result.code) == {"numpy", "scipy"}
    inputs, feds = {}, {}
    for case in cases:
        for dtype in DTYPES:
            fed = source_call(result.recipe, case, dtype)
            key = f"{case.id}:{dtype}"
            inputs[key] = {"p": fed.p, "q": fed.q, "w": fed.weights}
            feds[key] = (case, fed, dtype)
    outputs = run_snippet(result.code, inputs, tmp_path, {"scipy"})
    for key, (value, dtype_name) in outputs.items():
        case, fed, dtype = feds[key]
        outcome = compare(result.equivalent, case, fed, value, dtype)
        assert outcome.status == "verified" or case.out_of_domain, (key, outcome.reason)
        assert dtype_name == dtype


# --------------------------------------------------------------------------- runner, report, command


def test_runner_module_writes_porting_records(tmp_path):
    out = tmp_path / "results.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--pyargs",
            "conformance.checks.test_porting",
            "-p",
            "no:cacheprovider",
            "-q",
            "--klconf-only-plugins",
            "--klconf-api",
            "tests.test_porting:FAKES",
            "--klconf-framework",
            "scipy",
            "--klconf-cases",
            str(ROOT / "cases" / "pointwise" / "edges.yaml"),
            "--klconf-expectations",
            "none",
            f"--klconf-results={out}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=900,
    )
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]  # the flushing fake fails
    read = results.read(out, validate="all")
    assert read.problems == []
    verdicts = {(r.api, r.extra["target_framework"]): r.verdict for r in read.records}
    assert verdicts == {
        ("fake.port.kl_div_batchmean", "scipy"): "pass",
        ("fake.port.flushes_subnormals", "scipy"): "fail",
    }
    assert all(r.check == "porting" for r in read.records)


def _record(api, target, verdict, **extra) -> results.Record:
    return results.Record(
        check_id=f"porting-to-{target}::{api}[]::cpu::float64+float32",
        case_id=f"porting-to-{target}",
        case_hash="h",
        api=api,
        framework="torch",
        device="cpu",
        dtype="float64+float32",
        options={},
        verdict=verdict,
        check="porting",
        extra={"target_framework": target, **extra},
    )


def test_report_table_from_records_alone_escapes_everything(tmp_path):
    hostile = "</script><script>alert(1)</script>"
    recs = [
        _record(
            "torch.x",
            "jax",
            "pass",
            code=f"# {hostile}\n",
            expression=f"term = {hostile}",
            verified_cases=26,
            differs_on=[],
        ),
        _record(
            "torch.x",
            "scipy",
            "fail",
            code="c",
            expression="e",
            verified_cases=20,
            differs_on=[{"case": "tiny<probs>", "dtypes": ["float32"], "reason": f"because {hostile}"}],
        ),
        _record("torch.x", "tensorflow", "skip"),
    ]
    recs[2].reason = "tensorflow is not installed"
    path = tmp_path / "results.jsonl"
    with results.Writer(path) as w:
        w.write(results.run_header(corpus_hash="h"))
        for r in recs:
            w.write(r.to_json())
        w.write({"type": "end", "exitstatus": 1, "counts": {}})
    table = aggregate.porting(model.load([path]))
    assert table["targets"] == ["jax", "tensorflow", "scipy"]
    (row,) = table["rows"]
    assert [c["status"] for c in row["cells"]] == ["verified", "skip", "differs"]
    assert [t["verified"] for t in table["totals"]] == [1, 0, 0]
    page = (write_report([path], tmp_path / "out")).read_text()
    assert 'id="porting"' in page and "verified on 26 cases" in page and "differs on 1 case" in page
    assert hostile not in page and "&lt;/script&gt;&lt;script&gt;alert(1)" in page
    assert "tiny&lt;probs&gt;" in page and "tensorflow is not installed" in page


def klconf(*args):
    return subprocess.run(
        [sys.executable, "-m", "conformance", *args], cwd=ROOT, capture_output=True, text=True, env=ENV, timeout=600
    )


def test_port_command_json(tmp_path):
    proc = klconf(
        "port",
        "fake.port.kl_div_batchmean",
        "--api",
        "tests.test_porting:FAKES",
        "--to",
        "scipy",
        "--json",
        "--cases",
        str(ROOT / "cases" / "pointwise" / "basics.yaml"),
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert {"source", "target_framework", "code", "verified_cases", "differs_on"} <= set(data)
    assert data["target_framework"] == "scipy" and data["verified_cases"] == 4 and data["differs_on"] == []
    assert "def equivalent(p, q):" in data["code"]


def test_port_command_prints_the_snippet_and_rejects_bad_requests():
    proc = klconf(
        "port",
        "fake.port.kl_div_batchmean",
        "--api",
        "tests.test_porting:FAKES",
        "--to",
        "scipy",
        "--case",
        "canonical-2x3",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('"""fake.port.kl_div_batchmean in scipy') and "verified on 1 cases" in proc.stderr
    assert "import scipy.special" in proc.stdout
    bad = klconf(
        "port",
        "fake.port.kl_div_batchmean",
        "--api",
        "tests.test_porting:FAKES",
        "--to",
        "scipy",
        "--option",
        "reduction=sum",
    )
    assert bad.returncode == 2 and "has no option 'reduction'" in bad.stderr
    unknown = klconf(
        "port",
        "fake.port.kl_div_batchmean",
        "--api",
        "tests.test_porting:FAKES",
        "--to",
        "scipy",
        "--case",
        "no-such-case",
    )
    assert unknown.returncode == 2 and "no case 'no-such-case'" in unknown.stderr
