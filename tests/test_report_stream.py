"""The report streams its input: the page built from a file read check by check equals the one built from
Records in memory, duplicates are found without keeping records, memory stays bounded, and the accuracy
figures leave out what is undefined (the ULP error of an exact 0)."""

from __future__ import annotations

import json
import re
import tracemalloc

import pytest

from conformance import results
from conformance.report import aggregate, model, write_report
from conformance.results import Record
from tests.test_report_records import convention, failing, record, write_results


def _mixed_records(n: int) -> list[Record]:
    out = []
    for i in range(n):
        case, dtype = f"case-{i // 8}", ("float16", "bfloat16", "float32", "float64")[i % 4]
        options = {"reduction": ("sum", "mean")[(i // 4) % 2]}
        if i % 13 == 0:
            out.append(failing(case, dtype=dtype, options=options, headroom=float(i % 97 + 2)))
        elif i % 7 == 0:
            out.append(
                record(
                    case,
                    "jax.scipy.special.rel_entr",
                    "jax",
                    "cuda",
                    dtype,
                    options={},
                    verdict="skip",
                    reason="jax sees no cuda device",
                )
            )
        else:
            out.append(record(case, dtype=dtype, options=options, ulp_error=float(i % 50) / 10))
    out.append(convention())
    return out


def test_streamed_page_data_equals_data_from_records(tmp_path):
    path = write_results(tmp_path / "r.jsonl", _mixed_records(400))
    from_records = aggregate.build(model.load([path]), detail_limit=10)
    streamed = aggregate.Aggregator(detail_limit=10)
    runset = model.scan([path], streamed.add)
    assert runset.records == [] and runset.sources[0].results.checks == 401  # nothing kept but the counts
    from_stream = streamed.result(runset)
    for key in ("summary", "conventions", "headline", "porting", "accuracy", "not_run", "payload"):
        assert json.dumps(from_stream[key], sort_keys=True) == json.dumps(from_records[key], sort_keys=True), key
    payload = from_stream["payload"]
    assert payload["failingTotal"] == 31 and len(payload["failures"]) == 10  # the 10 worst of 31, by headroom
    headrooms = [float(payload["texts"][f["errors"]].split("headroom ")[1]) for f in payload["failures"]]
    worst = sorted((r.headroom for r in model.load([path]).records if r.verdict == "fail"), reverse=True)
    assert headrooms == worst[:10]


def test_worst_failures_are_kept_while_streaming(tmp_path):
    """Trimming as it goes (at twice the limit) must keep exactly the overall worst, whatever the order."""
    records = [failing(f"c{i}", headroom=float((i * 7919) % 1000) + 2) for i in range(250)]
    path = write_results(tmp_path / "r.jsonl", records)
    streamed = aggregate.Aggregator(detail_limit=7)
    model.scan([path], streamed.add)
    failures = streamed.payload.result()["failures"]
    expected = sorted(records, key=lambda r: -r.headroom)[:7]
    assert [f["r"] for f in failures] == [records.index(r) for r in expected]


def test_scan_reports_duplicates_across_and_within_files(tmp_path):
    first = write_results(tmp_path / "a.jsonl", [record(), record(dtype="float64"), record()])
    second = write_results(tmp_path / "b.jsonl", [failing(), record(dtype="float16")])
    seen = []
    runset = model.scan([first, second], seen.append)
    assert [e["dtype"] for e in seen] == ["float32", "float64", "float16"]  # first occurrence of each id only
    assert [(d.first, d.second, d.first_verdict, d.second_verdict) for d in runset.duplicates] == [
        (str(first), str(first), "pass", "pass"),
        (str(first), str(second), "pass", "fail"),
    ]
    loaded = model.load([first, second])
    assert [(d.check_id, d.second_verdict) for d in loaded.duplicates] == [
        (d.check_id, d.second_verdict) for d in runset.duplicates
    ]
    with pytest.raises(FileNotFoundError):
        model.scan([tmp_path / "missing.jsonl"], seen.append)


def _peak(work) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_streaming_memory_does_not_grow_with_records_kept(tmp_path):
    """Aggregating while reading keeps packed integers and floats per check, not a Record each: a fraction
    of the memory that reading the records costs, and growing far slower with the number of checks."""
    small = write_results(tmp_path / "small.jsonl", _mixed_records(5000))
    large = write_results(tmp_path / "large.jsonl", _mixed_records(20000))
    # (failure details are kept up to twice the limit: a small limit takes them out of the comparison)
    streamed = {
        path: _peak(lambda path=path: model.scan([path], aggregate.Aggregator(detail_limit=20).add))
        for path in (small, large)
    }
    loaded = _peak(lambda: model.load([large]))
    assert streamed[large] < loaded / 4, f"{streamed[large] / 2**20:.1f} MiB streamed, {loaded / 2**20:.1f} MiB loaded"
    per_check = (streamed[large] - streamed[small]) / 15000
    assert per_check < 400, f"{per_check:.0f} bytes a check"  # mostly the check id, to find duplicates


def test_ulp_error_of_an_exact_zero_is_undefined_not_charted(tmp_path):
    records = [
        record(ulp_error=0.7),
        record(dtype="float64", ulp_error=3.0),
        record(
            case="zeros",
            dtype="float64",
            expected=0.0,
            observed=1e-17,
            abs_error=1e-17,
            rel_error="inf",
            ulp_error=2.0e306,
            headroom=1e-3,
        ),
        record(device="cuda", dtype="float16", verdict="skip", reason="no cuda"),
    ]  # measured nothing
    path = write_results(tmp_path / "r.jsonl", records)
    rows = {r["dtype"]: r for r in aggregate.build(model.load([path]))["accuracy"]["rows"]}
    assert sorted(rows) == ["float32", "float64"]  # a row per API and dtype that measured an error, no other
    assert rows["float64"]["undefined"] == 1 and rows["float64"]["ulp"]["max"] == 3.0
    assert rows["float64"]["headroom"]["n"] == 2  # its headroom still counts
    page = write_report([path], tmp_path / "out").read_text()
    ulp_panel = re.search(r'<g class="panel" data-key="ulp" data-lo="(-?\d+)" data-hi="(-?\d+)"', page)
    assert ulp_panel and (int(ulp_panel.group(1)), int(ulp_panel.group(2))) == (-1, 1)
    assert "1e306" not in page and "ULP and relative error are undefined where the exact value is 0" in page


def test_axis_keeps_every_decade_of_far_apart_values(tmp_path):
    """A large but real error widens the axis instead of pinning the other values to its edge."""
    path = write_results(tmp_path / "r.jsonl", [record(ulp_error=0.5), record(dtype="float64", ulp_error=4e40)])
    page = write_report([path], tmp_path / "out").read_text()
    assert '<g class="panel" data-key="ulp" data-lo="-1" data-hi="41"' in page


def test_reader_accepts_what_json_accepts_and_reports_the_rest(tmp_path):
    path = tmp_path / "r.jsonl"
    good = json.dumps(record().to_json())
    nan_literal = re.sub(r'"abs_error": ?2e-08', '"abs_error": NaN', good)
    assert nan_literal != good
    path.write_text(
        "\n".join([good, "", "   ", nan_literal.replace("canonical", "other"), "{not json", '["a list"]', good[:30]])
    )
    read = results.read(path, validate="none")
    assert len(read.records) == 2  # the NaN literal parses as json does, blank lines are skipped
    assert [p.split(":")[0] for p in read.problems] == ["line 5", "line 6", "line 7"]
    assert "torn last line" in read.problems[-1] and "not a klconf event" in read.problems[1]


def test_a_check_event_the_aggregation_cannot_use_is_a_problem_not_a_crash(tmp_path):
    path = write_results(tmp_path / "r.jsonl", [record(), record(dtype="float64")])
    lines = path.read_text().splitlines()
    broken = json.loads(lines[1])
    broken["options"] = {"reduction": ["not", "hashable"]}  # a list value: labelled without the cache
    lines[1] = json.dumps(broken)
    path.write_text("\n".join(lines) + "\n")
    aggregator = aggregate.Aggregator()
    runset = model.scan([path], aggregator.add, validate="none")
    assert runset.problems() == [] and aggregator.result(runset)["summary"]["total"]["total"] == 2
    assert "reduction=['not', 'hashable']" in aggregator.payload.tables["opts"]


def test_unvalidated_events_missing_fields_are_problems_and_never_counted(tmp_path):
    path = write_results(
        tmp_path / "r.jsonl", [record(), record(dtype="float64"), failing(dtype="float16"), convention()]
    )
    lines = path.read_text().splitlines()
    for at, field in ((1, "api"), (3, "check_id"), (4, "case_hash")):
        event = json.loads(lines[at])
        del event[field]
        lines[at] = json.dumps(event)
    path.write_text("\n".join(lines) + "\n")
    aggregator = aggregate.Aggregator()
    runset = model.scan([path], aggregator.add, validate="none")
    problems = runset.problems()
    assert len(problems) == 3 and all("malformed check event" in p for p in problems)
    assert any("no 'api'" in p for p in problems) and any("no 'check_id'" in p for p in problems)
    data = aggregator.result(runset)
    assert data["summary"]["total"]["total"] == 1 and data["payload"]["m"]["n"] == 1  # only the intact one
    assert data["conventions"]["rows"] == []
