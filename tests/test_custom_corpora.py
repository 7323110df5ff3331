"""A corpus of one's own: tensor-level cases alone, distribution cases alone, or both, with every
command that takes --cases; the bundled expectations name cases such a corpus lacks, which is not
a problem, while manifests shipped inside a corpus are held to it."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conformance import cli, expectations, frameworks
from conformance.cases import load_corpus

ROOT = Path(__file__).resolve().parent.parent
TENSOR = """\
cases:
  - id: mine-two-rows
    description: Two rows of three classes, mine.
    p: {probs: [[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]]}
    q: {probs: [[0.3, 0.3, 0.4], [0.2, 0.5, 0.3]]}
  - id: mine-generated
    description: A seeded Dirichlet batch.
    p: {generator: dirichlet, alpha: 0.5, shape: [4, 6], seed: 3}
    q: {generator: dirichlet, alpha: 2.0, shape: [4, 6], seed: 4}
"""
DISTRIBUTIONS = """\
distribution_cases:
  - id: mine-normals
    description: Two normals.
    p: {family: normal, loc: [0.0, 1.0], scale: [1.0, 2.0]}
    q: {family: normal, loc: [0.5, 1.0], scale: [1.5, 0.5]}
  - id: mine-poisson-point-mass
    description: Poisson(0) against Bernoulli(0.25).
    p: {family: poisson, rate: [0.0, 0.0]}
    q: {family: bernoulli, probs: [0.25, 0.5]}
"""


def klconf(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = cli.main(list(args))
    return code, out.getvalue()


def klconf_process(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "conformance", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "KLCONF_CACHE_DIR": "off", "PYTHONPATH": str(ROOT)},
    )


def corpus(tmp_path: Path, **files: str) -> Path:
    """A corpus folder laid out as its author likes: files anywhere, not in klconf's folder names."""
    root = tmp_path / "my_cases"
    for name, text in files.items():
        path = root / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def filled(tmp_path):
    """A corpus with both kinds, its expected values written by `klconf cases fill`."""
    root = corpus(tmp_path, **{"tensor__mine.yaml": TENSOR, "dists.yaml": DISTRIBUTIONS})
    code, output = klconf("cases", "fill", "--cases", str(root))
    assert code == 0 and "6 change(s)" in output, output  # 4 expected blocks, 2 sha256
    return root


@pytest.mark.parametrize("kinds", [("tensor__mine.yaml",), ("dists.yaml",), ("tensor__mine.yaml", "dists.yaml")])
def test_cases_check_on_a_corpus_of_ones_own_exits_0(filled, kinds):
    root = filled.parent / "subset"
    for name in kinds:
        target = root / name.replace("__", "/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text((filled / name.replace("__", "/")).read_text())
    code, output = klconf("cases", "check", "--cases", str(root))
    assert code == 0 and output.strip().endswith("0 problem(s)"), output
    tensor = 2 if "tensor__mine.yaml" in kinds else 0
    distributions = 2 if "dists.yaml" in kinds else 0
    assert f"{tensor} cases loaded, {tensor} confirmed" in output
    assert f"{distributions} distribution cases loaded, {distributions} confirmed" in output


def test_fill_then_check_on_a_distribution_only_corpus(tmp_path):
    root = corpus(tmp_path, **{"dists.yaml": DISTRIBUTIONS})
    code, output = klconf("cases", "check", "--cases", str(root))
    assert code == 1 and output.count("no stored expected values") == 2, output  # not "no case files found"
    assert klconf("cases", "fill", "--cases", str(root))[0] == 0
    code, output = klconf("cases", "check", "--cases", str(root))
    assert code == 0, output
    assert "kl: [0.2876820724517809, 0.6931471805599453]" in (root / "dists.yaml").read_text()  # -log 0.75, log 2


def test_a_folder_with_no_case_of_either_kind_is_still_a_problem(tmp_path):
    root = corpus(tmp_path, **{"notes.yaml": "expectations: []\n"})
    _, problems = load_corpus(root)
    assert len(problems) == 1 and "no case files" in problems[0].message
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no case files" in load_corpus(empty)[1][0].message


def test_bundled_expectations_about_cases_the_corpus_lacks_are_not_problems(filled):
    tensor, _ = load_corpus(filled)
    manifest = expectations.load(None, tensor, frameworks.builtin_apis(), distribution_cases=[])
    assert manifest.problems == [] and manifest.by_check  # (per-API entries: conventions, porting)
    assert not [cid for cid in manifest.by_check if cid.startswith("mine-")]  # nothing in my corpus is claimed


def test_the_bundled_expectations_are_held_to_the_bundled_corpus():
    """Where the manifests belong to the corpus (they sit in its folder), an unknown case is a problem."""
    assert expectations.owns(None, None) and not expectations.owns(None, ROOT / "cases" / "pointwise")
    tensor, _ = load_corpus()
    manifest = expectations.load(None, tensor, frameworks.builtin_apis(), strict_cases=True)
    assert manifest.problems == []
    trimmed = [c for c in tensor if c.id != "zeros-in-p"]
    manifest = expectations.load(None, trimmed, frameworks.builtin_apis(), strict_cases=True)
    assert any("unknown case 'zeros-in-p'" in p.message for p in manifest.problems)


def test_manifests_inside_a_corpus_are_checked_against_it(filled):
    manifests = filled / "expectations"
    manifests.mkdir()
    (manifests / "mine.yaml").write_text(
        textwrap.dedent("""\
        expectations:
          - id: my-known-bug
            status: bug
            kind: nan
            reason: rel_entr returns NaN on my rows for a reason stated here.
            checks: {case: [mine-two-rows, not-in-my-corpus], api: scipy.special.rel_entr, dtype: float64}
        """)
    )
    code, output = klconf("cases", "check", "--cases", str(filled), "--expectations", str(manifests))
    assert code == 1 and "unknown case 'not-in-my-corpus'" in output and output.count("\n") == 2, output
    (manifests / "mine.yaml").write_text((manifests / "mine.yaml").read_text().replace(", not-in-my-corpus", ""))
    code, output = klconf("cases", "check", "--cases", str(filled), "--expectations", str(manifests))
    assert code == 0, output


def test_an_entry_is_stale_only_for_a_loaded_case_that_passes(filled):
    from conformance.results import Record

    tensor, _ = load_corpus(filled)
    entry = textwrap.dedent("""\
        expectations:
          - id: elsewhere-and-here
            status: bug
            kind: value
            reason: a difference that was fixed upstream since.
            checks: {case: [mine-two-rows, a-bundled-case], api: fake.exact, dtype: float64}
        """)
    (filled / "expectations").mkdir()
    (filled / "expectations" / "e.yaml").write_text(entry)
    from tests import fakes

    manifest = expectations.load(filled / "expectations", tensor, [fakes.EXACT])
    assert manifest.problems == [] and manifest.by_check  # one check per option set of fake.exact
    assert all(cid.startswith("mine-two-rows::fake.exact") for cid in manifest.by_check)
    check_id = next(iter(manifest.by_check))
    record = Record(
        check_id=check_id,
        case_id="mine-two-rows",
        case_hash="",
        api="fake.exact",
        framework="numpy",
        device="cpu",
        dtype="float64",
        options={},
        verdict="pass",
    )
    assert manifest.apply(record).extra["expectation"]["outcome"] == "stale"


def test_run_on_a_tensor_only_corpus_exits_0(filled, tmp_path):
    (filled / "dists.yaml").unlink()
    out = tmp_path / "out"
    proc = klconf_process(
        "run",
        "--cases",
        str(filled),
        "--api",
        "tests.fakes:EXACT",
        "--only-api",
        "--check",
        "value",
        "-n",
        "0",
        "--no-report",
        "--no-progress",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    checks = [c for c in checks if c["type"] == "check"]
    assert {c["case_id"] for c in checks} == {"mine-two-rows", "mine-generated"}
    assert {c["verdict"] for c in checks} <= {"pass", "skip", "unsupported"}


def test_run_on_a_distribution_only_corpus_exits_0(filled, tmp_path):
    pytest.importorskip("torch")
    (filled / "tensor" / "mine.yaml").unlink()
    out = tmp_path / "out"
    proc = klconf_process(
        "run",
        "--cases",
        str(filled),
        "--framework",
        "torch",
        "--check",
        "distribution",
        "--device",
        "cpu",
        "--dtype",
        "float64",
        "-n",
        "0",
        "--no-report",
        "--no-progress",
        "--out",
        str(out),
    )
    checks = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    checks = [c for c in checks if c["type"] == "check"]
    verdicts = {c["case_id"]: c["verdict"] for c in checks}
    # torch's Poisson || Bernoulli is +inf for every rate: a known bug, but only for the bundled case ids
    assert verdicts == {"mine-normals": "pass", "mine-poisson-point-mass": "fail"}, proc.stdout + proc.stderr
    assert proc.returncode == 1 and "no case files" not in proc.stderr
    (filled / "dists.yaml").write_text(DISTRIBUTIONS.split("  - id: mine-poisson")[0])
    assert klconf("cases", "fill", "--cases", str(filled))[0] == 0
    proc = klconf_process(
        "run",
        "--cases",
        str(filled),
        "--framework",
        "torch",
        "--check",
        "distribution",
        "--device",
        "cpu",
        "--dtype",
        "float64",
        "-n",
        "0",
        "--no-report",
        "--no-progress",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_explain_and_port_take_a_corpus_of_ones_own(filled):
    pytest.importorskip("scipy")
    code, output = klconf(
        "explain",
        "scipy.special.rel_entr",
        "--vs",
        "scipy.special.kl_div",
        "--cases",
        str(filled),
        "--case",
        "mine-two-rows",
    )
    assert code == 0 and "mine-two-rows" in output, output
    code, output = klconf("explain", "scipy.special.rel_entr", "--vs", "scipy.special.kl_div", "--cases", str(filled))
    assert code == 2 and "no case 'forum-example'" in output  # the default case is the bundled corpus's


def test_port_verifies_on_a_corpus_of_ones_own(filled):
    pytest.importorskip("scipy")
    pytest.importorskip("torch")
    code, output = klconf("port", "scipy.special.rel_entr", "--to", "torch", "--cases", str(filled))
    assert code == 0 and "scipy.special.rel_entr -> torch: verified on 2 cases" in output, output


def test_port_on_a_distribution_only_corpus_says_there_is_nothing_to_verify_on(tmp_path):
    root = corpus(tmp_path, **{"dists.yaml": DISTRIBUTIONS})
    code, output = klconf("port", "scipy.special.rel_entr", "--to", "torch", "--cases", str(root))
    assert code == 2 and "no tensor-level cases" in output, output
