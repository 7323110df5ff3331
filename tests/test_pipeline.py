"""The CI pipeline, locally: an unsharded run, four shard processes balanced by its durations, a strict
merge, the report, and a site with two runs of history, opened in a browser. The merged verdicts equal
the unsharded run's."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.results import read
from tests import browser

ROOT = Path(__file__).resolve().parent.parent
SHARDS = 4
# Value, property and convention checks of a plug-in API on a few cases: about fifty checks, seconds a shard.
SELECT = [
    "--api",
    "tests.fakes:plugin_apis",
    "--only-api",
    "--check",
    "value",
    "--check",
    "property",
    "--check",
    "convention",
    "-k",
    "canonical or forum or (conventions and sum)",
    "--no-report",
    "--no-progress",
    "-n",
    "0",
]


def _klconf(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "conformance", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "KLCONF_CACHE_DIR": "off"},
    )


def _finish(proc: subprocess.Popen, allowed=(0,)) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode in allowed, out
    return out


def _in_process(*args: str) -> str:
    """Output of a report command run here: they need no framework, nor a process of their own."""
    from conformance.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        code = main(list(args))
    assert code == 0, buffer.getvalue()
    return buffer.getvalue()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipeline")
    whole = tmp / "whole"
    _finish(_klconf("run", *SELECT, "--out", str(whole)))
    shards = [
        _klconf(
            "run",
            *SELECT,
            "--shard",
            f"{k}/{SHARDS}",
            "--durations",
            str(whole / "results.jsonl"),
            "--out",
            str(tmp / f"shard{k}"),
        )
        for k in range(1, SHARDS + 1)
    ]
    for proc in shards:
        _finish(proc)
    merged = tmp / "merged.jsonl"
    merge_out = _in_process(
        "merge", *[str(tmp / f"shard{k}" / "results.jsonl") for k in range(1, SHARDS + 1)], "-o", str(merged)
    )
    _in_process("report", str(merged), "--out", str(tmp / "report"))
    site = tmp / "site"
    first = _in_process("site", str(whole / "results.jsonl"), "--site", str(site))
    second = _in_process("site", str(merged), "--site", str(site))
    return {
        "tmp": tmp,
        "whole": whole / "results.jsonl",
        "merged": merged,
        "merge_out": merge_out,
        "site": site,
        "site_out": first + second,
    }


def test_shards_partition_the_plan_balanced_by_the_earlier_run(pipeline):
    tmp = pipeline["tmp"]
    parts = [read(tmp / f"shard{k}" / "results.jsonl") for k in range(1, SHARDS + 1)]
    plans = [p.end["plan"] for p in parts]
    assert len({p["plan_hash"] for p in plans}) == 1 and len({p["split_hash"] for p in plans}) == 1
    assert [p.header["shard"] for p in parts] == [{"index": k, "count": SHARDS} for k in range(1, SHARDS + 1)]
    ids = [r.check_id for p in parts for r in p.records]
    assert len(ids) == len(set(ids)) == len(plans[0]["checks"]) > 40
    assert all(
        r.check_id in {c[0] for c in plans[0]["checks"] if c[2] == k}
        for k, p in enumerate(parts, start=1)
        for r in p.records
    )
    kinds = {r.check for r in read(pipeline["whole"]).records}
    assert kinds == {"value", "property", "convention"}


def test_the_merged_verdicts_equal_the_unsharded_run(pipeline):
    assert "0 missing" in pipeline["merge_out"] and "conflict" not in pipeline["merge_out"]
    whole, merged = read(pipeline["whole"]), read(pipeline["merged"], validate="all")
    assert merged.problems == []
    assert {r.check_id: r.verdict for r in merged.records} == {r.check_id: r.verdict for r in whole.records}
    assert sum(merged.end["counts"].values()) == len(whole.records)
    assert (pipeline["tmp"] / "report" / "index.html").is_file()


def test_the_site_keeps_two_runs_and_links_each_report_and_the_diff(pipeline):
    site = pipeline["site"]
    history = json.loads((site / "history.json").read_text())["runs"]
    assert len(history) == 2 and all(e["complete"] for e in history)
    assert history[1]["diff_counts"]["regression"] == 0 and history[1]["diff_counts"]["removed"] == 0
    assert history[0]["totals"] == history[1]["totals"]  # same plan, same verdicts
    for entry in history:
        assert (site / entry["report"]).is_file()
    assert (site / history[1]["diff"]).is_file() and "diff" not in history[0]
    index = (site / "index.html").read_text()
    assert history[1]["report"] in index and history[1]["diff"] in index and "<svg" in index


def test_the_site_opens_in_a_browser_without_errors(pipeline):
    browser.skip_unless_browser()
    site = pipeline["site"]
    history = json.loads((site / "history.json").read_text())["runs"]
    for page in ("index.html", history[1]["report"], history[1]["diff"]):
        with browser.open_page(site / page) as watched:
            assert watched.problems == [], (page, watched.problems)
            if page == "index.html":
                links = watched.page.eval_on_selector_all("a", "els => els.map(e => e.getAttribute('href'))")
                assert history[1]["report"] in links and history[1]["diff"] in links
                assert watched.page.locator("svg.trend circle").count() >= 2
                overflow = watched.page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
                assert not overflow
