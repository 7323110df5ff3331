"""The what-changed page: changes planted between fake releases appear on it, per API, newest first,
linked to both records and a reproduction; strings from results are escaped; it opens in Chromium clean."""

from __future__ import annotations

import html as html_lib
import json
import re

import pytest

from conformance.cli import main
from conformance.report import changes
from tests.test_report_records import HOSTILE, HOSTILE_IMG, convention, failing, framework_event, record, write_results

MOVED_API = "jax.scipy.special.rel_entr"
BROKEN_API = "optax.kl_divergence"


def _release(tmp_path, label, records, version, requirements=("jax==" + "0.0",)):
    folder = tmp_path / label
    folder.mkdir()
    write_results(folder / "results.jsonl", records, frameworks=[framework_event("jax", version)])
    (folder / "release.json").write_text(
        json.dumps({"label": label, "framework": "jax", "requirements": list(requirements)})
    )
    return folder


@pytest.fixture
def series(tmp_path):
    """Three fake releases: 0.1 → 0.2 plants every kind of change, 0.2 → 0.3 changes nothing."""
    steady = record(case="steady", api=MOVED_API, framework="jax")
    old = [
        steady,
        record(case="drifts", api=MOVED_API, framework="jax", observed=[0.5, 0.25], tolerance=1e-6),
        record(case="breaks", api=BROKEN_API, framework="jax"),
        convention(api=BROKEN_API, framework="jax"),
        record(case="retired", api=MOVED_API, framework="jax"),
    ]
    new = [
        steady,
        record(case="drifts", api=MOVED_API, framework="jax", observed=[0.5, 0.25 + 4e-6], tolerance=1e-6),
        failing(case="breaks", api=BROKEN_API, framework="jax", message=HOSTILE),
        convention(api=BROKEN_API, framework="jax", inferred={"reduction": "mean"}),
        record(case=f"new-{HOSTILE_IMG}", api=MOVED_API, framework="jax"),
    ]
    return [
        _release(tmp_path, "jax-0.1", old, "0.1", ("jax==0.1", HOSTILE)),
        _release(tmp_path, "jax-0.2", new, "0.2", ("jax==0.2",)),
        _release(tmp_path, "jax-0.3", new, "0.3", ("jax==0.3",)),
    ]


def _row(page, pair_old, check_case):
    pair = next(p for p in page["pairs"] if p["old"] == pair_old)
    return next(r for g in pair["apis"] for r in g["rows"] if f"{check_case}::" in r["check_id"]), pair


def test_planted_changes_are_found_per_api(series):
    page = changes.build(changes.load_series(series))
    assert [(p["old"], p["new"]) for p in page["pairs"]] == [("jax-0.2", "jax-0.3"), ("jax-0.1", "jax-0.2")]
    newest = page["pairs"][0]
    assert newest["apis"] == [] and newest["unchanged"] == 5
    moved, pair = _row(page, "jax-0.1", "drifts")
    assert moved["what"] == "value" and moved["move"]["ratio"] == pytest.approx(4.0, rel=1e-6)
    assert [g["api"] for g in pair["apis"]] == sorted({BROKEN_API, MOVED_API})
    broke, _ = _row(page, "jax-0.1", "breaks")
    assert (broke["base_verdict"], broke["new_verdict"], broke["category"]) == ("pass", "fail", "regression")
    conv, _ = _row(page, "jax-0.1", "convention-probes")
    assert conv["what"] in ("verdict", "convention") and "reduction sum → mean" in conv["detail"]
    group = next(g for g in pair["apis"] if g["api"] == MOVED_API)
    assert len(group["added"]) == 1 and HOSTILE_IMG in group["added"][0]
    assert len(group["removed"]) == 1 and "retired::" in group["removed"][0]
    assert pair["versions"] == [("jax", "jax 0.1", "jax 0.2")]


def test_every_change_links_to_both_records_and_a_reproduction(series):
    page = changes.build(changes.load_series(series))
    moved, pair = _row(page, "jax-0.1", "drifts")
    anchors = {r["anchor"]: r for r in pair["records"]}
    assert [anchors[link["anchor"]]["release"] for link in moved["links"]] == ["jax-0.1", "jax-0.2"]
    # no stored snippet for a passing check: the pins and the klconf selection that rerun it
    repro = anchors[moved["links"][1]["anchor"]]["repro"]
    assert "jax==0.2" in repro and "--check value" in repro and "-k 'drifts and rel_entr'" in repro
    broke, _ = _row(page, "jax-0.1", "breaks")
    assert anchors[broke["links"][1]["anchor"]]["repro"].startswith("import numpy as np")  # the record's own


def test_page_is_escaped_and_self_contained(series, tmp_path):
    out = tmp_path / "changes.html"
    assert main(["changes", *map(str, series), "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert HOSTILE not in text and HOSTILE_IMG not in text
    assert html_lib.escape(HOSTILE) in text or "&lt;script&gt;" in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    anchors = set(re.findall(r'id="(p\d+-c\d+-(?:old|new))"', text))
    links = set(re.findall(r'href="#(p\d+-c\d+-(?:old|new))"', text))
    assert links and links <= anchors
    assert text.index('id="pair-1"') < text.index('id="pair-0"')  # newest pair first


def test_text_form_and_missing_file(series, tmp_path, capsys):
    assert main(["changes", "--format", "text", *map(str, series)]) == 0
    out = capsys.readouterr().out
    assert out.index("jax-0.2 → jax-0.3") < out.index("jax-0.1 → jax-0.2")
    assert "drifts::" in out and "1 check(s) of jax.scipy.special.rel_entr" in out
    assert main(["changes", str(tmp_path / "nowhere.jsonl"), str(series[0])]) == 2


def test_page_opens_in_chromium_without_errors(series, tmp_path):
    from tests import browser

    browser.skip_unless_browser()
    out = changes.write(changes.load_series(series), tmp_path / "changes.html")
    with browser.open_page(out) as watched:
        page = watched.page
        assert page.locator("tr.change").count() == 3  # drifts, breaks, the convention
        page.locator("a[href^='#p0-c']").first.click()
        opened = page.evaluate("document.querySelector(location.hash).open")
        assert opened is True
        assert not watched.problems, watched.problems
