"""The report in a real browser: headless Chromium driven by Playwright (tests/browser.py).

The tests open a report with no console errors, uncaught exceptions, dialogs or network requests,
click filters and a matrix cell and watch what is shown change, check that hostile strings from
case files and plug-ins show as text and never run, take a screenshot, and hold the page to its
layout: no horizontal overflow at 1,280 px, each reason stated once, chart axes spanning the
values they plot. Skipped with the reason where Chromium or Playwright is missing.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pytest

from tests.browser import open_page, skip_unless_browser
from tests.test_report_records import (
    HOSTILE,
    HOSTILE_CLOSE,
    HOSTILE_IMG,
    convention,
    failing,
    framework_event,
    record,
    write_results,
)

MATRIX_APIS = "() => Array.from(document.querySelectorAll('table.matrix th.api')).map(e => e.textContent)"
MATRIX_CELLS = "() => Array.from(document.querySelectorAll('table.matrix td.cell:not(.c-none)')).map(e => e.className)"
COUNT = "() => document.getElementById('filter-count').textContent"
FAILURE_CARDS = "() => document.querySelectorAll('#failure-list details.failure').length"
OPEN_ALL = "() => document.querySelectorAll('details').forEach(d => d.open = true)"
SHARED_REASON = "the equivalent sums over the batch where the call averages"
NOT_ON_CUDA = "scipy.stats.entropy does not run on cuda"


@pytest.fixture(autouse=True)
def _browser():
    skip_unless_browser()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from conformance.report import write_report

    tmp = tmp_path_factory.mktemp("browser")
    records = []
    for case in ("canonical-2x3", "dirichlet-8x5", HOSTILE):
        for dtype in ("float32", "float64"):
            records += [
                record(case, dtype=dtype),
                record(case, dtype=dtype, options={"reduction": "none"}),
                record(case, "jax.scipy.special.rel_entr", "jax", dtype=dtype, options={}),
                record(case, "scipy.special.kl_div", "scipy", dtype=dtype, options={}),
            ]
        records.append(
            failing(
                case,
                dtype="float16",
                message=HOSTILE_IMG,
                diagnosis=HOSTILE_CLOSE,
                extra={"repro": f"print({HOSTILE_CLOSE!r})\n"},
            )
        )
        records.append(
            record(case, "jax.scipy.special.rel_entr", "jax", "cuda", options={}, verdict="skip", reason=HOSTILE)
        )
    records.append(failing("dirichlet-8x5", "scipy.special.kl_div", "scipy", dtype="float16", options={}))
    records += [
        record(case, "scipy.stats.entropy", "scipy", "cuda", options={}, verdict="unsupported", reason=NOT_ON_CUDA)
        for case in ("canonical-2x3", "dirichlet-8x5")
    ]
    records.append(convention(api=f"plugin.{HOSTILE}", framework="numpy", inferred={"reduction": HOSTILE_IMG}))
    # an exact 0 measured with a tiny error: its ULP error (1e-17 / 5e-324) must not stretch the chart's axis
    records.append(
        record(
            "zeros-both",
            dtype="float64",
            expected=0.0,
            observed=1e-17,
            abs_error=1e-17,
            rel_error="inf",
            ulp_error=2.0e306,
            headroom=1e-3,
        )
    )
    records += porting_records()
    path = write_results(
        tmp / "results.jsonl",
        records,
        frameworks=[framework_event(), framework_event("numpy", HOSTILE, **{HOSTILE: HOSTILE_CLOSE})],
    )
    return write_report([path], tmp / "out"), records


def porting_records() -> list:
    """Six source calls x two targets; one reason shared by five differing cells, another by two."""
    from conformance.results import Record

    out = []
    for n in range(6):
        api, options = "torch.nn.functional.kl_div", {"reduction": f"r{n}"}
        for target in ("jax", "scipy"):
            differs = []
            if target == "jax" and n:
                differs = [{"case": f"case-{n}", "dtypes": ["float32"], "reason": SHARED_REASON}]
            if target == "scipy" and n < 2:
                differs = [{"case": "tiny", "dtypes": ["float64"], "reason": "scipy clips at 1e-7"}]
            out.append(
                Record(
                    check_id=f"porting-to-{target}::{api}[reduction=r{n}]::cpu::float64+float32",
                    case_id=f"porting-to-{target}",
                    case_hash="h",
                    api=api,
                    framework="torch",
                    device="cpu",
                    dtype="float64+float32",
                    options=options,
                    verdict="fail" if differs else "pass",
                    check="porting",
                    extra={
                        "target_framework": target,
                        "expression": f"{target}.kl(p, q) * {n}",
                        "verified_cases": 30,
                        "differs_on": differs,
                        "code": f"def equivalent(p, q):\n    return {n}\n",
                        "notes": ["float16 is checked apart"],
                    },
                )
            )
    return out


def test_report_opens_without_errors_or_requests(report, tmp_path):
    index, records = report
    with open_page(index) as watched:
        page = watched.page
        assert page.evaluate("window.klconfReport.checks") == len(records)
        assert page.evaluate(COUNT).startswith(f"{len(records)} of {len(records)} checks")
        shot = page.screenshot(path=str(_screenshot_path(tmp_path, "report.png")))
        assert len(shot) > 20000
        page.locator("#matrix").scroll_into_view_if_needed()
        page.screenshot(path=str(_screenshot_path(tmp_path, "matrix.png")))
        assert watched.problems == []


def test_filters_change_what_is_shown(report):
    index, records = report
    with open_page(index) as watched:
        page = watched.page
        apis = page.evaluate(MATRIX_APIS)
        assert "torch.nn.functional.kl_div" in apis and "scipy.special.kl_div" in apis
        page.click("input[data-dim=fw][value=torch]")
        after = page.evaluate(MATRIX_APIS)
        assert "torch.nn.functional.kl_div" not in after and "scipy.special.kl_div" in after
        torch_checks = sum(r.framework == "torch" for r in records)
        assert page.evaluate(COUNT).startswith(f"{len(records) - torch_checks} of {len(records)}")
        page.click("input[data-dim=fw][value=torch]")
        page.click("input[data-dim=v][value=pass]")
        cells = page.evaluate(MATRIX_CELLS)
        assert cells and not any("c-pass" in c for c in cells)
        assert page.evaluate(FAILURE_CARDS) == sum(r.failed for r in records)
        page.click("input[data-dim=d][value=cpu]")
        assert all("c-skip" in c or "c-unsupported" in c for c in page.evaluate(MATRIX_CELLS))  # what is not on cpu
        assert page.evaluate(FAILURE_CARDS) == 0
        page.fill("#filter-text", "dirichlet")
        page.click("input[data-dim=d][value=cpu]")
        shown = sum(r.case_id == "dirichlet-8x5" and r.verdict != "pass" for r in records)  # pass is still off
        assert page.evaluate(COUNT).startswith(f"{shown} of {len(records)}")
        assert watched.problems == []


def test_matrix_cell_leads_to_failure_details(report):
    index, _ = report
    with open_page(index) as watched:
        page = watched.page
        page.click("td.cell.c-fail[data-case='dirichlet-8x5'][data-api='scipy.special.kl_div']")
        assert page.locator("#cell-detail tbody tr").count() == 3  # two passing dtypes and the failing float16
        page.click("#cell-detail a")
        opened = page.evaluate(
            "() => Array.from(document.querySelectorAll('details.failure[open] code')).map(e => e.textContent)"
        )
        assert opened == ["dirichlet-8x5::scipy.special.kl_div[]::cpu::float16"]
        repro = page.locator("details.failure[open] pre.repro").text_content()
        assert "print('observed:'" in repro
        # a card expands its details only when opened: a closed one carries its summary alone
        card_id = page.locator("details.failure:not([open])").first.get_attribute("id")
        closed = page.locator(f"#{card_id}")
        assert closed.locator("dl").count() == 0
        closed.locator("summary").click()
        assert closed.locator("dl dt").first.text_content() == "check"
        assert watched.problems == []


def test_hostile_strings_show_as_text_and_never_run(report):
    index, _ = report
    with open_page(index) as watched:
        page = watched.page
        page.evaluate(OPEN_ALL)
        page.wait_for_function("() => document.querySelectorAll('details.failure .body').length > 0")
        text = page.evaluate("() => document.body.innerText")
        assert HOSTILE in text and HOSTILE_IMG in text  # matrix rows, conventions table, failure messages
        assert page.evaluate("typeof window.__xss") == "undefined"
        assert page.locator("script").count() == 2 and page.locator("img").count() == 0
        assert HOSTILE_CLOSE in page.locator("details.failure pre.repro").first.text_content()
        assert watched.problems == []


@pytest.mark.parametrize("expanded", [False, True], ids=["collapsed", "expanded"])
def test_layout_fits_1280_px_states_reasons_once_and_axes_span_the_data(report, expanded, tmp_path):
    index, _ = report
    with open_page(index, width=1280) as watched:
        page = watched.page
        if expanded:
            page.evaluate(OPEN_ALL)
            page.click("td.cell.c-fail[data-case='dirichlet-8x5'][data-api='scipy.special.kl_div']")
            page.wait_for_function("() => document.querySelectorAll('details.failure .body').length > 0")
        overflow = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert overflow[0] <= overflow[1] == 1280, f"the page is {overflow[0]} px wide at 1,280 px"
        wide = page.evaluate("""() => Array.from(document.querySelectorAll('main *'))
            .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5
                         && !e.closest('.scroll'))
            .map(e => e.tagName + '.' + e.className)""")
        assert wide == [], "elements reach past the right edge"
        page.screenshot(
            path=str(_screenshot_path(tmp_path, f"layout-{'expanded' if expanded else 'collapsed'}.png")),
            full_page=True,
        )

        text = page.evaluate("() => document.body.innerText")
        html = page.content()
        for reason in (SHARED_REASON, "scipy clips at 1e-7", "float16 is checked apart", NOT_ON_CUDA):
            assert text.count(reason) == 1, f"{reason!r} is stated {text.count(reason)} times"
            assert html.count(reason) == 1

        panels = page.evaluate("""() => Array.from(document.querySelectorAll('svg.chart g.panel')).map(p => ({
            key: p.dataset.key, lo: +p.dataset.lo, hi: +p.dataset.hi,
            ticks: Array.from(p.querySelectorAll('text.tick')).map(t => t.textContent).filter(t => /^1e/.test(t)),
            values: Array.from(p.querySelectorAll('g.glyph')).flatMap(g => [+g.dataset.min, +g.dataset.max])}))""")
        assert [p["key"] for p in panels] == ["ulp", "rel", "headroom"]
        for panel in panels:
            positive = [v for v in panel["values"] if v > 0]
            assert positive, panel["key"]
            assert 10.0 ** panel["lo"] <= min(positive) and max(positive) <= 10.0 ** panel["hi"], panel
            assert math.floor(math.log10(min(positive))) == panel["lo"]  # no empty decades at either end
            assert math.ceil(math.log10(max(positive))) == panel["hi"]
            assert panel["ticks"][0] == f"1e{panel['lo']}"
            assert all(panel["lo"] <= int(re.sub("^1e", "", t)) <= panel["hi"] for t in panel["ticks"])
        ulp = next(p for p in panels if p["key"] == "ulp")
        assert ulp["hi"] <= 5  # the exact 0's ULP error (2e306) is not plotted
        assert watched.problems == []


def _screenshot_path(tmp_path: Path, name: str) -> Path:
    """Screenshots go to $KLCONF_SCREENSHOTS when set (to look at them), else to the test's temporary folder."""
    folder = Path(os.environ.get("KLCONF_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name
