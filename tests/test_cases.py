"""Case files: valid ones load, malformed ones give one clear problem naming file, line and field."""

import textwrap

import numpy as np
import pytest

from conformance import cases, generators


def write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


VALID = """\
cases:
  - id: ok
    description: fine
    p: {probs: [[0.5, 0.5]]}
    q: {probs: [[0.25, 0.75]]}
"""


def only_problem(path):
    """The first problem; a shape mismatch that follows from the first problem is allowed to accompany it."""
    loaded, problems = cases.load_corpus(path)
    assert problems and all(p is problems[0] or "differs from p's shape" in p.message for p in problems), problems
    return problems[0]


def test_bundled_corpus_loads_cleanly():
    loaded, problems = cases.load_corpus()
    assert problems == []
    assert len({c.id for c in loaded}) == len(loaded) >= 5


def test_valid_file(tmp_path):
    [case] = cases.load_cases(write(tmp_path, VALID))
    assert case.id == "ok" and case.shape == (1, 2) and case.p.space == "probs"
    assert case.line == 2 and case.file.endswith("c.yaml")


@pytest.mark.parametrize(
    "text, line, field, words",
    [
        ("cases:\n  - id: x\n    description: d\n    p: {probs: [[0.5, 0.5]]\n", 5, "cases[0].p", "YAML error"),
        (VALID.replace("    description: fine\n", ""), 2, "cases[0]", "'description' is required"),
        (
            VALID.replace("    q: {probs: [[0.25, 0.75]]}\n", "    q: {probs: [[0.25, 0.75]]}\n    colour: red\n"),
            2,
            "cases[0]",
            "unknown field(s): 'colour'",
        ),
        (VALID.replace("[[0.25, 0.75]]", "[[0.25, 0.75], [0.5]]"), 5, "cases[0].q.probs", "rows of unequal width"),
        (VALID.replace("[[0.25, 0.75]]", "[[-0.25, 1.25]]"), 5, "cases[0].q.probs", "negative probabilities"),
        (VALID.replace("[[0.25, 0.75]]", "[[0.25, abc]]"), 5, "cases[0].q.probs[0][1]", "is not of type 'number'"),
        (VALID.replace("id: ok", "id: Not Ok"), 2, "cases[0].id", "does not match"),
        (VALID.replace("[[0.25, 0.75]]", "[[0.25, 0.25, 0.5]]"), 5, "cases[0].q", "differs from p's shape"),
        (
            VALID.replace("{probs: [[0.25, 0.75]]}", "{generator: zipf, shape: [1, 2], seed: 1}"),
            5,
            "cases[0].q.generator",
            "unknown generator 'zipf'",
        ),
        (
            VALID.replace("{probs: [[0.25, 0.75]]}", "{generator: uniform, shape: [100000, 100000], seed: 1}").replace(
                "{probs: [[0.5, 0.5]]}", "{probs: [[0.5, 0.5]]}"
            ),
            5,
            "cases[0].q.shape",
            "10,000,000,000 values exceed the limit",
        ),
        (
            VALID.replace("{probs: [[0.25, 0.75]]}", "{generator: uniform, shape: [1, 2], seed: 1, alpha: 2}"),
            5,
            "cases[0].q.alpha",
            "takes no parameter 'alpha'",
        ),
        (
            VALID + "    expected: {kl_per_row: [0.1, 0.2], provenance: x}\n",
            6,
            "cases[0].expected.kl_per_row",
            "does not match the inputs: expected [1]",
        ),
        (VALID + "    expected: {kl_per_row: [0.1]}\n", 6, "cases[0].expected", "'provenance' is required"),
        ("cases:\n  - id: a\n    id: b\n", 3, "cases[0].id", "duplicate key 'id' (first on line 2)"),
        ("", None, "", "found an empty file"),
        ("- 1\n- 2\n", 1, "", "found a list"),
    ],
)
def test_malformed_file_names_file_line_and_field(tmp_path, text, line, field, words):
    problem = only_problem(write(tmp_path, text))
    assert problem.file.endswith("c.yaml")
    assert problem.line == line, problem
    assert problem.field == field, problem
    assert words in problem.message, problem


def test_every_problem_is_listed_at_once(tmp_path):
    bad = VALID.replace("[[0.25, 0.75]]", "[[-0.25, 1.25]]")
    write(tmp_path, bad, "a.yaml")
    write(tmp_path, VALID.replace("0.5, 0.5]]", "0.5]]"), "b.yaml")
    write(tmp_path, VALID, "c.yaml")  # ok, but its id repeats a.yaml's
    loaded, problems = cases.load_corpus(tmp_path)
    messages = " | ".join(map(str, problems))
    assert "negative probabilities" in messages and "differs from p's shape" in messages
    assert len(problems) == 2 and [c.id for c in loaded] == ["ok"]


def test_duplicate_ids_across_files(tmp_path):
    write(tmp_path, VALID, "a.yaml")
    write(tmp_path, VALID, "b.yaml")
    problem = only_problem(tmp_path)
    assert problem.file.endswith("b.yaml") and "duplicate case id 'ok'" in problem.message
    assert "a.yaml:2" in problem.message


def test_unsafe_yaml_is_rejected_without_side_effects(tmp_path):
    marker = tmp_path / "pwned"
    text = f"cases: !!python/object/apply:os.system ['touch {marker}']\n"
    problem = only_problem(write(tmp_path, text))
    assert "unsafe or unknown YAML tag" in problem.message and problem.line == 1
    assert not marker.exists()


def test_out_of_domain_cases_may_hold_nan_and_negative_entries(tmp_path):
    text = VALID.replace("[[0.25, 0.75]]", "[[-0.25, .nan]]").replace(
        "description: fine", "description: fine\n    out_of_domain: true"
    )
    [case] = cases.load_cases(write(tmp_path, text))
    assert np.isnan(case.q.values[0, 1]) and case.out_of_domain


def test_generators_are_seeded_and_fingerprinted():
    spec = {"generator": "dirichlet", "alpha": 0.5, "shape": [3, 7], "seed": 5}
    a, b = generators.generate(spec)[1], generators.generate(dict(spec))[1]
    assert np.array_equal(a, b) and np.allclose(a.sum(-1), 1)
    assert generators.digest(a) == generators.digest(b)
    assert generators.digest(a) != generators.digest(generators.generate({**spec, "seed": 6})[1])
    space, logits = generators.generate({"generator": "softmax_normal", "temperature": 0.5, "shape": [2, 4], "seed": 1})
    assert space == "logits" and logits.shape == (2, 4)
    hot = generators.generate({"generator": "one_hot", "shape": [5, 3], "seed": 2})[1]
    assert np.array_equal(hot.sum(-1), np.ones(5)) and set(np.unique(hot)) == {0.0, 1.0}


def test_content_hash_ignores_prose_but_not_numbers(tmp_path):
    [a] = cases.load_cases(write(tmp_path, VALID, "a.yaml"))
    [b] = cases.load_cases(write(tmp_path, VALID.replace("description: fine", "description: other"), "b.yaml"))
    [c] = cases.load_cases(write(tmp_path, VALID.replace("0.25, 0.75", "0.26, 0.74"), "c.yaml"))
    assert a.hash == b.hash != c.hash
