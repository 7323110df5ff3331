"""`klconf site`: the history grows by one entry per run, strings are escaped, the pages are self-contained."""

from __future__ import annotations

import json

import pytest

from conformance.cli import main
from conformance.report import site
from conformance.results import run_header
from tests.test_report_records import failing, framework_event, record, write_results

HOSTILE = '<script>alert("x")</script>'


def _run(tmp_path, name: str, records, run_id: str | None = None, version: str = "2.13.0+cpu"):
    header = run_header(argv=["klconf", "run"], corpus_hash="c0ffee")
    if run_id is not None:
        header["run_id"] = run_id
    return write_results(
        tmp_path / f"{name}.jsonl", records, header=header, frameworks=[framework_event("torch", version)]
    )


def _publish(capsys, results, where, *extra) -> str:
    code = main(["site", str(results), "--site", str(where), *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def test_each_run_adds_one_entry_with_totals_and_a_diff_against_the_previous(tmp_path, capsys):
    where = tmp_path / "site"
    first = _run(tmp_path, "first", [record(), record(dtype="float64")])
    second = _run(
        tmp_path, "second", [failing(), record(dtype="float64"), record(case="new-case")], version="2.14.1+cpu"
    )
    assert "first run" in _publish(capsys, first, where)
    assert "1 regression(s), 0 improvement(s), 1 added, 0 removed" in _publish(capsys, second, where)
    runs = json.loads((where / "history.json").read_text())["runs"]
    assert len(runs) == 2
    assert runs[0]["totals"] == {"torch": {"pass": 2}} and runs[1]["totals"] == {"torch": {"fail": 1, "pass": 2}}
    assert runs[1]["apis"] == {"torch.nn.functional.kl_div": {"fail": 1, "pass": 2}}
    assert runs[1]["frameworks"] == {"torch": "torch 2.14.1+cpu"} and runs[1]["corpus_hash"] == ["c0ffee"]
    assert runs[1]["diff_base"] == runs[0]["run_id"] and runs[1]["diff_counts"]["regression"] == 1
    index = (where / "index.html").read_text()
    assert runs[0]["report"] in index and runs[1]["diff"] in index
    assert "torch 2.14.1+cpu" in index and "1 fail" in index
    # the pass rate is 100 % then 2 of 3: both points are plotted within the axis
    chart = index[index.index('<svg class="trend"') :]
    assert "torch: 100.00%" in chart and "torch: 66.67%" in chart and ">60%<" in chart and ">100%<" in chart


def test_publishing_the_same_run_again_replaces_its_entry(tmp_path, capsys):
    where = tmp_path / "site"
    results = _run(tmp_path, "one", [record()])
    _publish(capsys, results, where)
    _publish(capsys, results, where)
    assert len(json.loads((where / "history.json").read_text())["runs"]) == 1


def test_strings_from_results_are_escaped_and_nothing_is_loaded(tmp_path, capsys):
    where = tmp_path / "site"
    _publish(capsys, _run(tmp_path, "a", [record(api=HOSTILE)], run_id="../../escape"), where)
    _publish(capsys, _run(tmp_path, "b", [failing(api=HOSTILE)]), where)
    index = (where / "index.html").read_text()
    assert HOSTILE not in index and "&lt;script&gt;" in index
    assert "http://" not in index.replace("http://www.w3.org/2000/svg", "") and "https://" not in index
    assert "<script" not in index  # the index needs no script at all
    runs = json.loads((where / "history.json").read_text())["runs"]
    assert runs[0]["run_id"].startswith("run-") and not (tmp_path / "escape").exists()
    assert all(p.resolve().is_relative_to(where.resolve()) for p in where.rglob("*"))


def test_only_the_last_runs_keep_their_results_file(tmp_path, capsys):
    where = tmp_path / "site"
    for k in range(3):
        _publish(capsys, _run(tmp_path, f"r{k}", [record(case=f"c{k}")]), where, "--keep-results", "1")
    runs = json.loads((where / "history.json").read_text())["runs"]
    kept = [(where / "runs" / r["run_id"] / "results.jsonl").exists() for r in runs]
    assert kept == [False, False, True] and all((where / r["report"]).exists() for r in runs)


def test_a_folder_with_a_foreign_history_is_refused(tmp_path, capsys):
    where = tmp_path / "site"
    where.mkdir()
    (where / "history.json").write_text('{"something": "else"}')
    assert main(["site", str(_run(tmp_path, "a", [record()])), "--site", str(where)]) == 2
    assert "not a klconf history" in capsys.readouterr().err


@pytest.mark.parametrize("values, low", [([1.0, 1.0], 0.9), ([0.95, 1.0], 0.9), ([0.42, 0.9], 0.4), ([0.0], 0.0)])
def test_the_trend_axis_spans_every_plotted_rate(values, low):
    chart = site.trend_chart({"torch": values}, [f"run {i}" for i in range(len(values))])
    assert f">{low * 100:.0f}%<" in chart and ">100%<" in chart
    assert all(f"torch: {v * 100:.2f}%" in chart for v in values)


@pytest.mark.parametrize(
    "entry",
    [
        {"run_id": "a", "totals": {"torch": {"pass": "many"}}},
        {"run_id": "a", "apis": ["x"]},
        {"run_id": "a", "report": 3},
    ],
)
def test_a_history_entry_of_the_wrong_shape_is_refused_with_its_place(tmp_path, capsys, entry):
    where = tmp_path / "site"
    where.mkdir()
    (where / "history.json").write_text(json.dumps({"runs": [entry]}))
    assert main(["site", str(_run(tmp_path, "b", [record()])), "--site", str(where)]) == 2
    assert "run 1 ('a')" in capsys.readouterr().err
