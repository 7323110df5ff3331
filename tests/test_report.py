"""The HTML report, JUnit XML and the results schema, from records built directly (no framework needed)."""

from __future__ import annotations

import array
import base64
import html
import json
import math
import re
import xml.etree.ElementTree as ET

import jsonschema
import pytest

from conformance import machine, results
from conformance.cli import main
from conformance.report import aggregate, junit, model, write_report
from conformance.results import Record, run_header
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


def _payload(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="klconf-data">(.*?)</script>', page, re.S)
    assert match, "the page embeds its data"
    return json.loads(match.group(1))


@pytest.fixture
def mixed(tmp_path):
    records = [
        record(),
        record(dtype="float64"),
        failing(dtype="float16"),
        record(api="scipy.special.rel_entr", framework="scipy", options={}, verdict="pass", ulp_error=3.0),
        record(
            api="optax.kl_divergence",
            framework="jax",
            options={},
            verdict="error",
            kind="exception",
            message="TypeError: bad dtype",
            extra={"traceback": "Traceback ...", "repro": "import jax\n"},
        ),
        record(
            api="optax.kl_divergence",
            framework="jax",
            device="cuda",
            options={},
            verdict="skip",
            reason="jax sees no cuda device",
        ),
        record(
            api="optax.kl_divergence",
            framework="jax",
            dtype="bfloat16",
            options={},
            verdict="xfail",
            reason="known: optax#1786",
        ),
        record(
            api="tf.keras.losses.KLDivergence",
            framework="tensorflow",
            options={"reduction": "sum"},
            verdict="timeout",
            message="no result after 60 s",
        ),
        record(
            api="tf.keras.losses.KLDivergence",
            framework="tensorflow",
            dtype="float16",
            verdict="crash",
            message="worker died: SIGSEGV",
        ),
        record(
            api="scipy.stats.entropy",
            framework="scipy",
            dtype="bfloat16",
            options={"axis": -1},
            verdict="unsupported",
            reason="SciPy has no bfloat16",
        ),
        record(api="scipy.stats.entropy", framework="scipy", dtype="float16", options={"axis": -1}, verdict="flaky"),
    ]
    header = run_header(argv=["klconf", "run"], corpus_hash="c0ffee")
    header["gpus"] = [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "driver": "550.54.15", "memory": "81559 MiB"}]
    header["env"] = {"TF_ENABLE_ONEDNN_OPTS": "0"}
    path = write_results(
        tmp_path / "results.jsonl",
        records,
        header=header,
        frameworks=[framework_event(), framework_event("jax", "0.10.2", **{"jax_default_matmul_precision": "highest"})],
    )
    return path, records


def test_report_shows_every_section(mixed, tmp_path):
    path, records = mixed
    index = write_report([path], tmp_path / "out")
    assert index == tmp_path / "out" / "index.html"
    page = index.read_text()
    text = html.unescape(re.sub(r"<[^>]+>", " ", page.split('<script type="application/json"')[0]))
    for section in (
        "Overview",
        "Which convention each API uses",
        "Conformance matrix",
        "Accuracy against the oracle",
        "Failing checks",
        "Run information",
    ):
        assert section in text
    # every verdict present gets a summary column, unknown ones included, in canonical order
    header_row = re.search(r'<table class="summary">.*?</thead>', page, re.S).group(0)
    columns = re.findall(r'<th class="v-([a-z]+) n">', header_row)
    assert columns == ["pass", "fail", "error", "timeout", "crash", "xfail", "unsupported", "skip", "flaky"]
    assert "NVIDIA H100 80GB HBM3 (driver 550.54.15, 81559 MiB)" in text
    assert "TF_ENABLE_ONEDNN_OPTS=0" in text and "jax_default_matmul_precision" in text
    assert "<svg" in page and "headroom = error / tolerance" in page
    assert "No inferred conventions in these results" in text
    assert "Incomplete run" not in text
    # nothing is fetched: no external scripts, styles, images or fonts
    assert not re.search(r'(src|href)="(https?:)?//', page) and "<link" not in page and "@import" not in page


def test_summary_counts_per_framework_and_device(mixed):
    path, records = mixed
    runset = model.load([path])
    summary = aggregate.build(runset)["summary"]
    rows = {(r["framework"], r["device"]): dict(zip(summary["verdicts"], r["counts"])) for r in summary["rows"]}
    assert rows[("torch", "cpu")] == {**dict.fromkeys(summary["verdicts"], 0), "pass": 2, "fail": 1}
    assert rows[("jax", "cuda")]["skip"] == 1 and rows[("jax", "cpu")]["error"] == 1
    assert [r["framework"] for r in summary["rows"]][:2] == [
        "torch",
        "jax",
    ]  # report order: torch, jax, tensorflow, scipy
    assert summary["total"]["total"] == len(records) and summary["total"]["failing"] == 4


def _texts(data: dict) -> list[dict]:
    """The failure details with their text indices resolved, as the page's script reads them."""
    texts = data["texts"]
    return [
        {k: (texts[v] if isinstance(v, int) and k not in ("r",) else v) for k, v in f.items()} for f in data["failures"]
    ]


def _column(data: dict, name: str) -> list:
    spec = data["m"]["cols"][name]
    kind = {"u8": "B", "u16": "H", "u32": "I", "f32": "f"}[spec["type"]]
    return list(array.array(kind, base64.b64decode(spec["b64"])))


def test_failure_details_carry_expected_observed_reason_and_repro(mixed):
    path, _ = mixed
    data = aggregate.build(model.load([path]))["payload"]
    assert data["failingTotal"] == 4
    failures = _texts(data)
    by_verdict = {f["verdict"]: f for f in failures}
    assert [f["verdict"] for f in failures] == ["crash", "timeout", "error", "fail"]  # worst first
    fail = by_verdict["fail"]
    assert fail["expected"] == "0.48349248" and fail["observed"] == "0.48397597"
    assert "rel 0.001" in fail["errors"] and "headroom 480" in fail["errors"]
    assert fail["diagnosis"].startswith("no single change") and "print('observed:'" in fail["repro"]
    assert by_verdict["error"]["traceback"] == "Traceback ..."
    m = data["m"]
    assert m["n"] == 11 and len(_column(data, "c")) == 11 and sorted(f["r"] for f in failures) == [2, 4, 7, 8]
    assert m["verdicts"][:8] == ["crash", "timeout", "error", "fail", "xfail", "pass", "unsupported", "skip"]
    verdicts = [m["verdicts"][m["groups"]["v"][g]] for g in _column(data, "g")]  # a check's verdict is its group's
    assert verdicts == [r.verdict for r in model.load([path]).records]
    headroom = _column(data, "h")
    assert headroom[2] == pytest.approx(480.0) and math.isnan(headroom[5])  # the skip measured nothing


def test_conventions_table_from_convention_records(tmp_path):
    records = [
        convention(),
        convention(dtype="float32"),
        convention(
            options={"reduction": "mean"},
            inferred={"reduction": "mean_all"},
            declared={"p_argument": "target", "reduction": "mean_batch"},
        ),
        convention(
            api="optax.kl_divergence",
            framework="jax",
            options={},
            device="cpu",
            dtype="float64",
            inferred={"zero_both": "nan"},
        ),
        convention(
            api="optax.kl_divergence",
            framework="jax",
            options={},
            device="cuda",
            dtype="float64",
            inferred={"zero_both": "0"},
        ),
        record(),
    ]
    table = aggregate.build(model.combine([model.Source("r", _results(records))]))["conventions"]
    assert table["fields"][:11] == list(aggregate.CONVENTION_FIELDS)
    rows = {(r["api"], r["options"]): r for r in table["rows"]}
    assert len(rows) == 3
    cells = dict(zip(table["fields"], rows[("torch.nn.functional.kl_div", "reduction=mean")]["cells"]))
    assert cells["reduction"]["disagree"] and cells["reduction"]["shown"] == [("mean_all", "")]
    assert cells["reduction"]["declared"] == "mean_batch" and not cells["p_argument"]["disagree"]
    assert rows[("torch.nn.functional.kl_div", "reduction=mean")]["findings"] == 1
    assert cells["output_dtype"]["shown"] == [("same as input", "")]
    split = dict(zip(table["fields"], rows[("optax.kl_divergence", "")]["cells"]))["zero_both"]
    assert split["varies"] and sorted(split["shown"]) == [("0", "cuda/float64"), ("nan", "cpu/float64")]
    path = write_results(tmp_path / "conv.jsonl", records)
    page = write_report([path], tmp_path).read_text()
    assert "No inferred conventions" not in page and 'class="disagree' in page and "declared: mean_batch" in page


def _results(records) -> results.Results:
    return results.Results(header={"run_id": "x"}, records=list(records), end={"counts": {}})


def test_incomplete_run_banner_without_end_event(tmp_path):
    path = write_results(tmp_path / "r.jsonl", [record(), failing()], end=False)
    page = write_report([path], tmp_path / "out").read_text()
    assert "Incomplete run" in page and "no end event" in page


def test_incomplete_run_banner_for_a_torn_last_line(tmp_path):
    path = write_results(tmp_path / "r.jsonl", [record(), record(dtype="float64"), failing()], torn=True)
    runset = model.load([path])
    assert len(runset.records) == 2 and runset.sources[0].torn
    page = write_report([path], tmp_path / "out").read_text()
    assert "the last line is torn" in page and "Problems reading the results" in page


def test_hostile_strings_are_escaped_everywhere(tmp_path):
    records = [
        failing(
            case=HOSTILE,
            api=f"plugin.{HOSTILE_CLOSE}",
            framework="numpy",
            message=HOSTILE_IMG,
            diagnosis=HOSTILE_CLOSE,
            options={"mode": HOSTILE},
            reason=HOSTILE,
            extra={"repro": f"print('{HOSTILE_CLOSE}')"},
        ),
        convention(api=HOSTILE, framework="numpy", inferred={"reduction": HOSTILE_IMG}),
    ]
    header = run_header(argv=["klconf", HOSTILE_CLOSE], corpus_hash=HOSTILE)
    path = write_results(
        tmp_path / "r.jsonl",
        records,
        header=header,
        frameworks=[framework_event("numpy", HOSTILE, **{HOSTILE: HOSTILE_IMG})],
    )
    page = write_report([path], tmp_path / "out").read_text()
    # no markup from the data survives as markup: the only <script> tags are the report's own two
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert "<img" not in page and "<!--" not in page and 'onerror="' not in page
    data = _payload(page)  # and the embedded JSON still round-trips every string
    assert data["m"]["cases"] == [HOSTILE, "convention-probes"]
    value = next(f for f in _texts(data) if f["check"] == "value")
    assert value["message"] == HOSTILE_IMG and HOSTILE_CLOSE in value["repro"]
    assert html.escape(HOSTILE) in page  # shown as text in the server-rendered tables


def test_large_run_embeds_compact_data_not_dom_rows(tmp_path):
    records = [
        record(case=f"case-{i // 40}", dtype=("float32", "float64")[i % 2], options={"reduction": f"r{i % 40}"})
        for i in range(20000)
    ]
    path = write_results(tmp_path / "r.jsonl", records)
    page = write_report([path], tmp_path / "out").read_text()
    assert page.count("<tr") < 100  # the matrix is built in the browser, one page at a time
    assert len(page) < 20 * 20000  # the columns take about 13 bytes a check
    assert _payload(page)["m"]["n"] == 20000


def test_report_command_writes_html_and_junit(mixed, tmp_path, capsys):
    path, _ = mixed
    code = main(["report", str(path), "--out", str(tmp_path / "rep"), "--junit", str(tmp_path / "junit.xml")])
    assert code == 0
    assert (tmp_path / "rep" / "index.html").exists() and (tmp_path / "junit.xml").exists()
    assert main(["report", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path)]) == 2
    assert "no such results file" in capsys.readouterr().err


# --------------------------------------------------------------------------- JUnit


def test_junit_maps_verdicts(mixed, tmp_path):
    path, records = mixed
    root = ET.parse(junit.write(model.load([path]), tmp_path / "j.xml")).getroot()
    assert root.get("tests") == str(len(records))
    assert (root.get("failures"), root.get("errors"), root.get("skipped")) == ("1", "4", "3")
    cases = {tc.get("classname") + "|" + tc.get("name"): tc for tc in root.iter("testcase")}
    fail = next(tc for k, tc in cases.items() if tc.find("failure") is not None)
    message = fail.find("failure").get("message")
    assert message.startswith("fail (value)") and "rel 0.001" in message and "ulp 8.1e+03" in message
    assert "reproduce:" in fail.find("failure").text
    skipped = [tc.find("skipped").get("message") for tc in root.iter("testcase") if tc.find("skipped") is not None]
    assert sorted(m.split(":")[0] for m in skipped) == ["skip", "unsupported", "xfail"]
    assert any("optax#1786" in m for m in skipped)
    errors = {tc.find("error").get("type") for tc in root.iter("testcase") if tc.find("error") is not None}
    assert errors == {"exception", "timeout", "crash", "flaky"}
    suites = [s.get("name") for s in root.iter("testsuite")]
    assert suites[0] == "klconf.torch.cpu" and "klconf.jax.cuda" in suites


def test_junit_drops_characters_xml_cannot_hold(tmp_path):
    path = write_results(tmp_path / "r.jsonl", [failing(message="bad \x00\x07 bytes\x1b[31m")])
    out = junit.write(model.load([path]), tmp_path / "j.xml")
    message = ET.parse(out).getroot().find(".//failure").get("message")
    assert "bad  bytes[31m" in message


def test_junit_command(mixed, tmp_path):
    path, _ = mixed
    assert main(["junit", str(path), "-o", str(tmp_path / "j.xml")]) == 0
    assert ET.parse(tmp_path / "j.xml").getroot().tag == "testsuites"


# --------------------------------------------------------------------------- schema


def test_schema_is_valid_and_accepts_what_klconf_writes(mixed):
    schema = json.loads(results.SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    path, _ = mixed
    assert model.load([path], validate="all").problems() == []
    for _, event, _ in results.iter_events(path):
        assert results.schema_errors(event) == []
    assert results.schema_errors(convention().to_json()) == []


def test_schema_rejects_malformed_events(tmp_path):
    good = record().to_json()
    assert any("verdict" in e for e in results.schema_errors({k: v for k, v in good.items() if k != "verdict"}))
    assert results.schema_errors({**good, "abs_error": "huge"})
    assert results.schema_errors({**good, "check": "convention", "extra": {"inferred": {}}})  # declared missing
    assert results.schema_errors({"type": "run", "schema": 1})
    assert results.schema_errors({"type": "end"})


def test_reader_reports_schema_problems_without_crashing(tmp_path):
    path = write_results(tmp_path / "r.jsonl", [record(), record(dtype="float64")])
    lines = path.read_text().splitlines()
    broken = json.loads(lines[1])
    broken["options"] = "reduction=sum"  # not a mapping
    lines[1] = json.dumps(broken)
    lines.insert(2, json.dumps({**json.loads(lines[2]), "ulp_error": [1, 2]}))
    path.write_text("\n".join(lines) + "\n")
    read = results.read(path)
    assert len(read.records) == 2  # the record without a usable identity is left out
    assert any("line 2" in p and "options" in p for p in read.problems)
    assert any("line 3" in p and "ulp_error" in p for p in read.problems)
    assert len(results.read(path, validate="none").records) == 3  # unchecked, the bad record goes through


def test_sampled_validation_checks_the_head_and_a_stride(tmp_path, monkeypatch):
    records = [record(case=f"c{i}") for i in range(300)]
    path = write_results(tmp_path / "r.jsonl", records)
    calls = []
    original = results.schema_errors
    monkeypatch.setattr(results, "schema_errors", lambda event: calls.append(event["type"]) or original(event))
    monkeypatch.setattr(results, "SAMPLE_STRIDE", 100)
    results.read(path)
    assert calls.count("check") == results.SAMPLE_HEAD + 2  # the head, then checks 100 and 200
    assert calls.count("run") == 1 and calls.count("end") == 1
    calls.clear()
    results.read(path, validate="all")
    assert calls.count("check") == 300


def test_run_header_records_gpus_and_numerics_environment(monkeypatch):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    header = run_header(corpus_hash="abc")
    assert header["env"]["TF_ENABLE_ONEDNN_OPTS"] == "0" and header["env"]["OMP_NUM_THREADS"] == "3"
    assert isinstance(header["gpus"], list) and header["numpy"]
    assert results.schema_errors(results.jsonable(header)) == []


def test_gpus_are_read_from_nvidia_smi(monkeypatch, tmp_path):
    tool = tmp_path / "nvidia-smi"
    tool.write_text(
        "#!/bin/sh\necho '0, NVIDIA H100 80GB HBM3, 550.54.15, 81559 MiB, 9.0'\n"
        "echo '1, NVIDIA H100 80GB HBM3, 550.54.15, 81559 MiB, 9.0'\n"
    )
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    machine.gpus.cache_clear()
    try:
        found = machine.gpus()
    finally:
        machine.gpus.cache_clear()
    assert found == [
        {
            "index": i,
            "name": "NVIDIA H100 80GB HBM3",
            "driver": "550.54.15",
            "memory": "81559 MiB",
            "compute_capability": "9.0",
        }
        for i in (0, 1)
    ]


def test_record_round_trip_keeps_fields():
    rec = failing(extra={"repro": "x = 1\n", "traceback": "t"})
    back = Record.from_json(json.loads(json.dumps(rec.to_json())))
    assert back == rec


def test_convention_checks_that_inferred_nothing_are_listed_not_tabled(tmp_path):
    skipped = record(
        "conventions",
        "optax.kl_divergence",
        "jax",
        options={},
        verdict="skip",
        check="convention",
        reason="optax is not installed",
    )
    page = write_report([write_results(tmp_path / "r.jsonl", [skipped, record()])], tmp_path / "out").read_text()
    assert "the convention checks inferred nothing" in page and "1 × skip: optax is not installed" in page
    table = aggregate.build(model.load([tmp_path / "r.jsonl"]))["conventions"]
    assert (
        table["rows"] == []
        and table["declared"] == []
        and table["not_inferred"] == [("skip: optax is not installed", 1)]
    )


def test_schema_accepts_a_skipped_convention_check_without_inference():
    skipped = record("conventions", verdict="skip", check="convention", reason="optax is not installed").to_json()
    assert results.schema_errors(skipped) == []
    assert results.schema_errors({**skipped, "verdict": "pass"})  # a decided one must say what it inferred


@pytest.mark.parametrize(
    "value, text",
    [
        ({"float16": "float16", "float32": "float32"}, "same as input"),
        ({"float16": "higher", "bfloat16": "higher"}, "higher (every dtype)"),
        ({"float16": "float32", "float64": "float64"}, "float16 → float32, float64 → float64"),
        ({"input": "log_prob", "target": "prob"}, "input: log_prob, target: prob"),
        ({"input": "log_prob", "target": "log_prob"}, "input: log_prob, target: log_prob"),
        (1e-07, "1e-07"),
        (None, "—"),
        (["log_prob", "prob"], "log_prob, prob"),
    ],
)
def test_convention_values_read_compactly(value, text):
    assert aggregate.fmt_field(value) == text
