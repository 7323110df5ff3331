"""Expectations manifests: exact-id matching, kind changes, stale entries, and clear problems."""

import textwrap

import pytest

from conformance import cases, expectations
from conformance.results import Record
from tests import fakes


@pytest.fixture(scope="module")
def corpus():
    return cases.load_cases()


def manifest(tmp_path, corpus, body, strict_cases=True):
    (tmp_path / "fake.yaml").write_text(textwrap.dedent(body))
    return expectations.load(tmp_path, corpus, [fakes.EXACT], strict_cases=strict_cases)


ENTRY = """\
expectations:
  - id: fake-nan
    status: bug
    kind: nan
    reason: the fake returns NaN here on purpose
    link: https://example.org/issue/1
    checks:
      case: canonical-2x3
      api: fake.exact
      options: {reduction: [sum]}
      dtype: [float32]
"""
ID = "canonical-2x3::fake.exact[reduction=sum]::cpu::float32"


def record(verdict, kind=None, check_id=ID):
    return Record(
        check_id=check_id,
        case_id="canonical-2x3",
        case_hash="",
        api="fake.exact",
        framework="numpy",
        device="cpu",
        dtype="float32",
        options={"reduction": "sum"},
        verdict=verdict,
        kind=kind,
        message="m",
    )


def test_matching_failure_becomes_xfail_with_reason_and_link(tmp_path, corpus):
    m = manifest(tmp_path, corpus, ENTRY)
    assert m.problems == [] and list(m.by_check) == [ID]
    rec = m.apply(record("fail", "nan"))
    assert rec.verdict == "xfail" and "known bug [fake-nan]" in rec.reason and "example.org" in rec.reason
    assert rec.extra["expectation"]["outcome"] == "matched"


def test_failure_of_another_kind_is_new(tmp_path, corpus):
    rec = manifest(tmp_path, corpus, ENTRY).apply(record("fail", "value"))
    assert rec.verdict == "fail" and "expected kind 'nan'" in rec.message and "(new)" in rec.message


def test_entry_that_now_passes_is_stale(tmp_path, corpus):
    rec = manifest(tmp_path, corpus, ENTRY).apply(record("pass"))
    assert rec.verdict == "pass" and rec.extra["expectation"]["outcome"] == "stale"
    assert "stale" in rec.message


def test_matching_is_by_exact_id_never_substring(tmp_path, corpus):
    m = manifest(tmp_path, corpus, ENTRY)
    longer = record("fail", "nan", check_id=ID + "::d/dinput")
    assert m.apply(longer).verdict == "fail"


@pytest.mark.parametrize(
    "change, words",
    [
        ("case: canonical-2x3", "unknown case 'no-such-case'"),
        ("api: fake.exact", "unknown api 'fake.nope'"),
        ("options: {reduction: [sum]}", "has no option combination {'reduction': 'median'}"),
    ],
)
def test_entry_matching_no_check_is_a_problem(tmp_path, corpus, change, words):
    replacement = {
        "case: canonical-2x3": "case: no-such-case",
        "api: fake.exact": "api: fake.nope",
        "options: {reduction: [sum]}": "options: {reduction: [median]}",
    }[change]
    m = manifest(tmp_path, corpus, ENTRY.replace(change, replacement))
    assert any(words in p.message and p.line == 2 and p.file.endswith("fake.yaml") for p in m.problems), m.problems


def test_schema_problems_name_the_field(tmp_path, corpus):
    m = manifest(tmp_path, corpus, ENTRY.replace("kind: nan", "kind: wobbly"))
    assert [p.field for p in m.problems] == ["expectations[0].kind"]


def test_bundled_manifests_are_valid(corpus):
    from conformance import frameworks

    m = expectations.load(None, corpus, frameworks.builtin_apis())
    assert m.problems == []
    assert len(m.by_check) > 100
    statuses = {e.status for e in m.entries()}
    assert statuses == {"bug", "divergence"}


PORTING = """\
expectations:
  - id: fake-port-subnormals
    status: divergence
    kind: porting
    reason: the target flushes subnormals
    checks:
      check: porting
      case: [tiny-probs-float32, tiny-probs-float64]
      api: fake.exact
      options: {reduction: [sum]}
      target: jax
  - id: fake-port-empty
    status: divergence
    kind: porting
    reason: the source returns an empty array on an empty batch
    checks:
      check: porting
      case: empty-batch
      api: fake.exact
      options: {reduction: [sum]}
      target: jax
"""
PORT_ID = "porting-to-jax::fake.exact[reduction=sum]::cpu::float64+float32"


def porting_record(verdict, *differs_on):
    rec = record(verdict, "porting" if verdict == "fail" else None, check_id=PORT_ID)
    rec.check, rec.case_id = "porting", "porting-to-jax"
    rec.extra["differs_on"] = [{"case": c, "reason": "r", "dtypes": ["float64"]} for c in differs_on]
    return rec


def test_porting_entries_explain_the_cases_they_list_together(tmp_path, corpus):
    m = manifest(tmp_path, corpus, PORTING)
    assert m.problems == [] and [e.id for e in m.by_check[PORT_ID]] == ["fake-port-subnormals", "fake-port-empty"]
    rec = m.apply(porting_record("fail", "tiny-probs-float64", "empty-batch"))
    assert rec.verdict == "xfail" and "fake-port-subnormals" in rec.reason and "fake-port-empty" in rec.reason
    one = m.apply(porting_record("fail", "tiny-probs-float32"))
    assert one.verdict == "xfail" and one.extra["expectation"]["id"] == "fake-port-subnormals"
    assert one.extra["expectation"]["stale"] == ["fake-port-empty"]


def test_porting_difference_on_an_unlisted_case_is_new(tmp_path, corpus):
    rec = manifest(tmp_path, corpus, PORTING).apply(porting_record("fail", "tiny-probs-float64", "broadcast-4-vs-1"))
    assert rec.verdict == "fail" and rec.extra["expectation"]["outcome"] == "new_cases"
    assert "do not list broadcast-4-vs-1 (new)" in rec.message


def test_a_hang_is_explained_by_the_entry_that_expects_it_alone(tmp_path, corpus):
    body = PORTING.replace(
        "kind: porting\n    reason: the source returns", "kind: [porting, timeout]\n    reason: the source returns"
    )
    m = manifest(tmp_path, corpus, body)
    hung = porting_record("timeout")
    hung.kind, hung.extra = "timeout", {}  # a process ended at its time limit: no per-case detail
    rec = m.apply(hung)
    assert rec.verdict == "xfail" and rec.extra["expectation"]["id"] == "fake-port-empty", rec.message
    # with no entry expecting a timeout, the hang is new
    rec = manifest(tmp_path, corpus, PORTING).apply(porting_record("timeout"))
    assert rec.verdict == "timeout" and rec.extra["expectation"]["outcome"] == "changed_kind"


def test_porting_entries_that_now_pass_are_stale(tmp_path, corpus):
    rec = manifest(tmp_path, corpus, PORTING).apply(porting_record("pass"))
    assert rec.verdict == "pass" and rec.extra["expectation"]["outcome"] == "stale"


def test_a_check_claimed_twice_outside_porting_case_lists_is_a_problem(tmp_path, corpus):
    body = ENTRY + ENTRY.split("expectations:\n", 1)[1].replace("fake-nan", "fake-nan-again")
    m = manifest(tmp_path, corpus, body)
    assert any("already claimed by fake-nan" in p.message for p in m.problems), m.problems


VERSIONED = ENTRY.replace(
    "    link: https://example.org/issue/1\n", '    link: https://example.org/issue/1\n    versions: {numpy: "<2.0"}\n'
)


def _made_with(verdict, kind, numpy_version):
    rec = record(verdict, kind)
    rec.framework_version = {"numpy": numpy_version}
    return rec


def test_a_versioned_entry_holds_only_for_the_releases_it_names(tmp_path, corpus):
    m = manifest(tmp_path, corpus, VERSIONED)
    assert m.problems == []
    assert m.apply(_made_with("fail", "nan", "1.26.4")).verdict == "xfail"
    later = m.apply(_made_with("fail", "nan", "2.4.6"))  # the same failure on a later release is new
    assert later.verdict == "fail" and "expectation" not in later.extra
    fixed = m.apply(_made_with("pass", None, "2.4.6"))  # a fixed release is not stale: the entry is not its business
    assert fixed.verdict == "pass" and "expectation" not in fixed.extra
    assert m.apply(_made_with("pass", None, "1.26.4")).extra["expectation"]["outcome"] == "stale"
    unknown = record("fail", "nan")  # a record that names no release of the package: not the entry's business
    assert m.apply(unknown).verdict == "fail"


def test_entries_of_disjoint_releases_may_claim_one_check(tmp_path, corpus):
    later = VERSIONED.replace("fake-nan", "fake-nan-later").replace('"<2.0"', '">=2.0"').replace("expectations:\n", "")
    m = manifest(tmp_path, corpus, VERSIONED + later)
    assert m.problems == []
    assert m.apply(_made_with("fail", "nan", "2.1")).extra["expectation"]["id"] == "fake-nan-later"
    assert m.apply(_made_with("fail", "nan", "1.0")).extra["expectation"]["id"] == "fake-nan"


def test_a_version_specifier_that_is_not_pep_440_is_a_problem(tmp_path, corpus):
    m = manifest(tmp_path, corpus, VERSIONED.replace('"<2.0"', '"before two"'))
    assert any("PEP 440" in p.message and p.field.endswith("versions") for p in m.problems), m.problems


def test_an_api_older_releases_lack_is_unsupported_there():
    api = fakes.EXACT.__class__(**{**fakes.EXACT.__dict__, "since": (("numpy", "2.0"),)})
    assert "first appeared in numpy 2.0" in api.absent_from({"numpy": "1.26.4"})
    assert api.absent_from({"numpy": "2.4.6"}) is None and api.absent_from({}) is None
