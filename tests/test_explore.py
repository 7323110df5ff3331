"""`klconf explore` on plug-in fakes with bugs confined to narrow input regions (no framework needed)."""

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conformance.conventions import Convention
from conformance.explore import commands
from conformance.explore.search import Budget, Search
from conformance.explore.targets import ValueTarget
from conformance.frameworks import Api

ROOT = Path(__file__).resolve().parent.parent
WIDTH_LIMIT = 12  # the wide-rows fake is wrong for rows of more classes than this
LOGIT_LIMIT = 20.0  # the large-logit fake is wrong for rows holding a logit above this


def _per_row_kl(logits_q: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Exact KL(P || softmax(logits)) per row, in float64."""
    z = np.asarray(logits_q, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    log_q = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    p = np.asarray(p, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1.0)) - log_q), 0.0)
    return terms.sum(axis=-1)


def _fake(name: str, bug=None, delay: float = 0.0) -> Api:
    """A (logits of Q, P) per-row KL; `bug(logits, p, kl)` returns the wrong output, or None where it is right."""

    def call(fw, logits_q, p, options, weights):
        time.sleep(delay)
        kl = _per_row_kl(logits_q, p)
        wrong = bug(logits_q, p, kl) if bug else None
        return np.asarray(kl if wrong is None else wrong, dtype=p.dtype)

    return Api(
        name=name,
        framework="numpy",
        call=call,
        devices=("cpu",),
        dtypes=("float32", "float64"),
        convention=lambda o: Convention(
            arguments=("logits", "target"), p_argument="target", input_space=("logits", "prob"), reduction="per_row"
        ),
    )


CORRECT = _fake("fake.softmax_kl")
WIDE_ROWS = _fake("fake.wrong_for_wide_rows", lambda z, p, kl: kl * 1.01 + 0.01 if z.shape[-1] > WIDTH_LIMIT else None)
LARGE_LOGIT = _fake("fake.wrong_past_a_logit", lambda z, p, kl: np.where((z > LOGIT_LIMIT).any(axis=-1), kl + 0.5, kl))
SLOW_CORRECT = _fake("fake.slow_but_correct", delay=0.3)


def _search(api: Api, examples: int, seed: int = 1) -> Search:
    return Search([ValueTarget(api, ["float64", "float32"], ["cpu"])], Budget(examples=examples), seed).run()


def test_a_bug_in_wide_rows_is_found_once_and_shrunk_to_the_boundary_width():
    search = _search(WIDE_ROWS, examples=20)
    assert len(search.found) == 1, [f.failure.mechanism for f in search.found.values()]
    found = next(iter(search.found.values()))
    assert found.examples > 1  # many failing examples, one finding
    assert found.example["input"]["shape"][-1] == WIDTH_LIMIT + 1
    assert found.failure.records[0]["verdict"] == "fail" and found.failure.records[0]["api"] == WIDE_ROWS.name


def test_a_bug_past_a_logit_bound_is_shrunk_to_just_above_the_bound():
    search = _search(LARGE_LOGIT, examples=60, seed=2)
    assert len(search.found) == 1
    found = next(iter(search.found.values()))
    q = found.example["input"]["q"]
    assert "logits" in q, q
    largest = float(np.max(np.asarray(q["logits"], np.float64)))
    assert LOGIT_LIMIT < largest <= LOGIT_LIMIT + 1
    p = found.example["input"]["p"]
    # P shrunk to plain: probabilities, or logits none of which is past the bound
    assert "probs" in p or not np.any(np.asarray(p["logits"], np.float64) > LOGIT_LIMIT), p


def test_a_correct_api_yields_no_finding():
    search = _search(CORRECT, examples=40, seed=3)
    assert not search.found
    stats = search.stats[f"value {CORRECT.name}"]
    assert stats.examples >= 30 and stats.failing == 0 and not stats.errors


def test_a_slow_api_is_no_finding_hypothesis_health_checks_and_deadlines_are_off():
    search = _search(SLOW_CORRECT, examples=4, seed=4)
    assert not search.found and search.stats[f"value {SLOW_CORRECT.name}"].examples >= 4


def test_budget_parsing():
    assert commands.parse_budget("10m") == 600 and commands.parse_budget("90s") == 90
    assert commands.parse_budget("1.5h") == 5400 and commands.parse_budget("45") == 45
    from conformance.cli import UsageError

    for bad in ("", "ten minutes", "0m", "-5s"):
        with pytest.raises(UsageError):
            commands.parse_budget(bad)


def klconf(*args):
    return subprocess.run(
        [sys.executable, "-m", "conformance", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "KLCONF_CACHE_DIR": "off"},
    )


def test_saved_findings_pass_cases_check_and_klconf_run_reproduces_them(tmp_path):
    cases_dir, out = tmp_path / "cases" / "explored", tmp_path / "out"
    proc = klconf(
        "explore",
        "--api",
        "tests.test_explore:WIDE_ROWS",
        "--only-api",
        "--examples",
        "12",
        "--seed",
        "5",
        "--save-to",
        str(cases_dir),
        "--out",
        str(out),
        "--expectations",
        "none",
        "-q",
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr  # something was found
    summary = json.loads((out / "explore.json").read_text())
    assert summary["type"] == "explore" and summary["seed"] == 5 and summary["budget"] == "12 examples per target"
    assert summary["targets"][0]["examples"] >= 12 and summary["targets"][0]["api"] == WIDE_ROWS.name
    (finding,) = summary["findings"]
    assert (
        finding["saved"] and np.shape(finding["input"]["p"].get("probs", finding["input"]["p"].get("logits")))[-1] == 13
    )

    saved = yaml.safe_load((cases_dir / "tensor.yaml").read_text())["cases"]
    (case,) = saved
    assert case["id"] == finding["case_id"] and {"explored", "seed-5"} <= set(case["tags"])
    assert case["expected"]["provenance"].startswith("certified:") and case["dtypes"] == [finding["dtype"]]
    assert Path(finding["repro"]).read_text().startswith("# klconf reproduction of")

    check = klconf("cases", "check", "--cases", str(tmp_path / "cases"), "--expectations", "none")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "1 cases loaded, 1 confirmed" in check.stdout

    run = klconf(
        "run",
        "--cases",
        str(tmp_path / "cases"),
        "--api",
        "tests.test_explore:WIDE_ROWS",
        "--only-api",
        "--check",
        "value",
        "-k",
        case["id"],
        "--expectations",
        "none",
        "-n",
        "0",
        "--no-report",
        "--out",
        str(tmp_path / "run"),
    )
    assert run.returncode == 1, run.stdout + run.stderr
    records = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    failed = {r["check_id"]: r for r in records if r.get("type") == "check" and r["verdict"] == "fail"}
    assert set(finding["check_ids"]) <= set(failed)
    assert failed[finding["check_ids"][0]]["message"] == finding["message"]


def test_no_finding_exits_zero_and_writes_no_case(tmp_path):
    proc = klconf(
        "explore",
        "--api",
        "tests.test_explore:CORRECT",
        "--only-api",
        "--examples",
        "10",
        "--save-to",
        str(tmp_path / "explored"),
        "--out",
        str(tmp_path),
        "--expectations",
        "none",
        "-q",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (tmp_path / "explored").exists()
    assert json.loads((tmp_path / "explore.json").read_text())["findings"] == []


def test_the_html_report_shows_an_exploration_summary_next_to_the_results_escaped(tmp_path):
    from conformance.report import write_report
    from tests.test_report_records import HOSTILE, HOSTILE_CLOSE, HOSTILE_IMG, record, write_results

    path = write_results(tmp_path / "results.jsonl", [record()])
    plain = write_report([path], tmp_path / "plain").read_text()
    assert 'id="exploration"' not in plain  # no explore.json: no section
    summary = {
        "type": "explore",
        "budget": "600 s",
        "seed": 7,
        "seconds": 601.5,
        "rounds": 2,
        "examples": 1234,
        "targets": [{"kind": "value", "target": f"value {HOSTILE}", "api": HOSTILE, "examples": 99, "failing": 3}],
        "findings": [
            {
                "case_id": "explored-value-x-1234abcd",
                "kind": "value",
                "mechanism": HOSTILE_IMG,
                "dtype": "float16",
                "examples": 3,
                "message": HOSTILE_CLOSE,
                "saved": True,
                "input": {"p": {"probs": [[0.0, 1.0]]}, "q": {"logits": [[HOSTILE, 1.0]]}},
            }
        ],
    }
    (tmp_path / "explore.json").write_text(json.dumps(summary))
    page = write_report([path], tmp_path / "out").read_text()
    section = page.split('<section id="exploration">')[1].split("</section>")[0]
    assert "budget 600 s, seed 7, 1234 examples over 1 targets" in section
    assert "explored-value-x-1234abcd" in section and "float16" in section and "[[0.0, 1.0]]" in section
    assert "<img" not in page and page.count("<script") == 2 and 'onerror="' not in page
    (tmp_path / "explore.json").write_text('{"type": "something else"}')  # a foreign or broken file: nothing shown
    assert 'id="exploration"' not in write_report([path], tmp_path / "again").read_text()


def test_the_shipped_loaders_read_the_explored_cases_and_their_expectations():
    from conformance import expectations, frameworks
    from conformance.cases import DEFAULT_CASES_DIR, load_corpus
    from conformance.distributions import cases as distribution_cases
    from conformance.explore import save

    folder = save.EXPLORED_DIR
    assert folder.parent == DEFAULT_CASES_DIR
    tensor = folder / save.TENSOR_FILE
    distribution = folder / save.DISTRIBUTION_FILE
    if not (tensor.exists() or distribution.exists()):
        pytest.skip("no explored cases committed")
    loaded, problems = load_corpus()
    assert not problems
    ids = {c.id for c in loaded}
    if tensor.exists():
        assert {e["id"] for e in yaml.safe_load(tensor.read_text())["cases"]} <= ids
    if distribution.exists():
        shipped = {c.id for c in distribution_cases.load_corpus()[0]}
        assert {e["id"] for e in yaml.safe_load(distribution.read_text())["distribution_cases"]} <= shipped
    if save.EXPECTATIONS_FILE.exists():
        manifest = expectations.load(None, loaded, frameworks.builtin_apis())
        assert not manifest.problems, manifest.problems
        drafted = {e["id"] for e in yaml.safe_load(save.EXPECTATIONS_FILE.read_text())["expectations"]}
        assert drafted <= {e.id for e in manifest.entries()}
