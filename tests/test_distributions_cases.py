"""The distribution case loader: every problem names file, line and field; stored values are verified and filled."""

import textwrap

import pytest

from conformance.cases import load_corpus as load_tensor_corpus
from conformance.distributions import stored
from conformance.distributions.cases import load_corpus

GOOD_P = "{family: normal, loc: [0.0, 1.0], scale: [1.0, 2.0]}"
GOOD_Q = "{family: normal, loc: 0.5, scale: 1.5}"


def write(tmp_path, body: str, name: str = "d.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


def one_case(tmp_path, p=GOOD_P, q=GOOD_Q, extra=""):
    return write(
        tmp_path,
        f"""
        distribution_cases:
          - id: c1
            description: a case
            p: {p}
            q: {q}
        {extra}""",
    )


def problems_of(path):
    cases, problems = load_corpus(path)
    return cases, [str(p) for p in problems]


def test_a_good_case_loads_with_its_batch_shape(tmp_path):
    cases, problems = problems_of(one_case(tmp_path))
    assert problems == [] and cases[0].batch == (2,) and cases[0].pair == "normal||normal"


@pytest.mark.parametrize(
    "p,q,line,field,message",
    [
        (
            "{family: norml, loc: 0.0, scale: 1.0}",
            GOOD_Q,
            4,
            "distribution_cases[0].p.family",
            "unknown family 'norml'",
        ),
        ("{family: normal, loc: 0.0}", GOOD_Q, 4, "distribution_cases[0].p", "normal needs parameter 'scale'"),
        (
            "{family: normal, loc: 0.0, scale: 1.0, rate: 2.0}",
            GOOD_Q,
            4,
            "distribution_cases[0].p.rate",
            "unknown parameter(s) rate for normal",
        ),
        (GOOD_P, "{family: normal, loc: 0.0, scale: [1.0, -2.0]}", 5, "distribution_cases[0].q.scale", "must be > 0"),
        (
            "{family: bernoulli, probs: [0.5, 1.5]}",
            "{family: bernoulli, probs: 0.5}",
            4,
            "distribution_cases[0].p.probs",
            "must lie in [0, 1]",
        ),
        (
            "{family: binomial, total_count: 2.5, probs: 0.5}",
            "{family: binomial, total_count: 3.0, probs: 0.5}",
            4,
            "distribution_cases[0].p.total_count",
            "whole numbers",
        ),
        (
            "{family: uniform, low: [0.0, 2.0], high: [1.0, 1.0]}",
            "{family: uniform, low: -1.0, high: 3.0}",
            4,
            "distribution_cases[0].p.high",
            "must not be below low",
        ),
        (
            "{family: mvn_tril, loc: [0.0, 0.0], scale_tril: [[1.0, 0.5], [0.0, 1.0]]}",
            "{family: mvn_diag, loc: [0.0, 0.0], scale_diag: [1.0, 1.0]}",
            4,
            "distribution_cases[0].p.scale_tril",
            "lower triangular",
        ),
        (
            "{family: categorical, probs: [[0.5, 0.5], [0.2, 0.8]]}",
            "{family: categorical, probs: [0.2, 0.3, 0.5]}",
            5,
            "distribution_cases[0].q",
            "event size 3 differs from p's 2",
        ),
        (
            "{family: normal, loc: [0.0, 1.0], scale: [1.0, 2.0, 3.0]}",
            GOOD_Q,
            4,
            "distribution_cases[0].p",
            "batch shapes do not broadcast",
        ),
        (
            GOOD_P,
            "{family: normal, loc: [0.0, 1.0, 2.0], scale: 1.0}",
            5,
            "distribution_cases[0].q",
            "does not broadcast",
        ),
        (
            "{family: pareto, scale: 1.0, concentration: 2.0}",
            GOOD_Q,
            5,
            "distribution_cases[0].q.family",
            "no closed form for pareto || normal",
        ),
        (
            "{family: normal, loc: [[0.0, 1.0], [2.0]], scale: 1.0}",
            GOOD_Q,
            4,
            "distribution_cases[0].p.loc",
            "unequal width",
        ),
    ],
)
def test_semantic_problems_name_file_line_and_field(tmp_path, p, q, line, field, message):
    cases, problems = problems_of(one_case(tmp_path, p, q))
    assert cases == [] and problems, "the case must be rejected"
    assert any(f"d.yaml:{line}: {field}: " in text and message in text for text in problems), problems


def test_schema_problems_name_the_field(tmp_path):
    path = write(
        tmp_path,
        """
        distribution_cases:
          - id: Bad Id
            description: x
            p: {family: normal, loc: 0.0, scale: 1.0}
            q: {family: normal, loc: 0.0, scale: [1.0e6]}
            colour: blue
        """,
    )
    _, problems = problems_of(path)
    text = "\n".join(problems)
    assert "d.yaml:2: distribution_cases[0].id: 'Bad Id' does not match" in text
    assert "unknown field(s): 'colour'" in text
    assert "d.yaml:5: distribution_cases[0].q.scale[0]" in text and "write 1.0e+6 with a signed exponent" in text


def test_expected_values_must_have_the_batch_shape(tmp_path):
    path = write(
        tmp_path,
        f"""
        distribution_cases:
          - id: c1
            description: a case
            p: {GOOD_P}
            q: {GOOD_Q}
            expected: {{kl: [0.1, 0.2, 0.3], provenance: test}}
        """,
    )
    _, problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].endswith(
        "d.yaml:6: distribution_cases[0].expected.kl: shape [3] does not match the batch shape [2]"
    )


def test_unsafe_yaml_is_a_problem_not_an_object(tmp_path):
    path = write(
        tmp_path,
        """
        distribution_cases:
          - id: c1
            description: !!python/object/apply:os.system ["echo owned"]
            p: {family: normal, loc: 0.0, scale: 1.0}
            q: {family: normal, loc: 0.0, scale: 1.0}
        """,
    )
    cases, problems = problems_of(path)
    assert (
        cases == []
        and len(problems) == 1
        and "d.yaml:3: distribution_cases[0].description: unsafe or unknown YAML tag rejected" in problems[0]
    )


def test_duplicate_keys_and_ids_are_problems(tmp_path):
    dup_key = write(
        tmp_path,
        """
        distribution_cases:
          - id: c1
            id: c2
            description: x
            p: {family: normal, loc: 0.0, scale: 1.0}
            q: {family: normal, loc: 0.0, scale: 1.0}
        """,
        "a.yaml",
    )
    assert any("a.yaml:3: distribution_cases[0].id: duplicate key 'id'" in p for p in problems_of(dup_key)[1])
    dup_key.unlink()
    one_case(tmp_path)
    write(tmp_path, (tmp_path / "d.yaml").read_text(), "e.yaml")
    _, problems = problems_of(tmp_path)
    assert any("e.yaml:2: id: duplicate case id 'c1' (first defined at" in p for p in problems)


def test_other_kinds_of_case_file_are_left_alone_both_ways(tmp_path):
    write(
        tmp_path,
        """
        cases:
          - id: t1
            description: a tensor case
            p: {probs: [[0.5, 0.5]]}
            q: {probs: [[0.25, 0.75]]}
        """,
        "tensor.yaml",
    )
    one_case(tmp_path)
    assert problems_of(tmp_path)[1] == [] and len(problems_of(tmp_path)[0]) == 1
    tensor_cases, tensor_problems = load_tensor_corpus(tmp_path)
    assert [c.id for c in tensor_cases] == ["t1"] and tensor_problems == []


def test_fill_writes_values_that_check_confirms_and_check_catches_tampering(tmp_path):
    path = one_case(tmp_path)
    assert stored.check(path)[1][0].field == "c1.expected"  # nothing stored yet
    changes, problems = stored.fill(path)
    assert problems == [] and len(changes) == 1 and changes[0].endswith("c1: expected values added")
    summary, problems = stored.check(path)
    assert problems == [] and "1 confirmed (2 stored KL values" in summary
    text = path.read_text()
    first = text.split("kl: [")[1].split(",")[0]
    path.write_text(text.replace(f"kl: [{first}", "kl: [0.123", 1))
    _, problems = stored.check(path)
    assert (
        len(problems) == 1
        and problems[0].field == "c1.expected.kl[0]"
        and "the closed form gives" in problems[0].message
    )
    assert problems[0].line == 2
    assert stored.fill(path)[0] == []  # without --update, stored values are kept
    assert stored.fill(path, update=True)[0] and stored.check(path)[1] == [] and path.read_text() == text
