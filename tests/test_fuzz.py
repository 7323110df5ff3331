"""Whatever bytes the case loader and the results reader get, they return data or a clear problem."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance import cases, results

YAMLISH = st.text(
    alphabet=st.sampled_from(list("cases:-[]{}, \n\t#!&*|>'\"0123456789.eE+-idpqrobslgtnaxyz_")), max_size=400
)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(data=st.one_of(st.binary(max_size=400), YAMLISH.map(str.encode)))
def test_case_loader_never_raises(tmp_path, data):
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    loaded, problems = cases.load_file(path)  # the property under test: no exception escapes
    assert all(isinstance(c, cases.Case) for c in loaded)
    for problem in problems:
        assert problem.file.endswith("fuzz.yaml") and problem.message


def _case_like():
    numbers = st.one_of(st.floats(allow_nan=True), st.integers(-3, 3), st.text(max_size=3), st.none())
    rows = st.lists(st.lists(numbers, max_size=4), max_size=3)
    dist = st.one_of(
        st.fixed_dictionaries({"probs": rows}),
        st.fixed_dictionaries({"logits": rows}),
        st.fixed_dictionaries(
            {
                "generator": st.sampled_from(["dirichlet", "uniform", "zipf"]),
                "shape": st.lists(st.integers(-1, 5), max_size=3),
                "seed": st.integers(-1, 3),
            }
        ),
        st.dictionaries(st.text(max_size=5), numbers, max_size=2),
    )
    return st.fixed_dictionaries(
        {"id": st.text(max_size=8), "description": st.text(max_size=8), "p": dist, "q": dist},
        optional={
            "expected": st.dictionaries(
                st.sampled_from(["kl_per_row", "provenance"]), st.one_of(rows, st.text(max_size=4))
            )
        },
    )


@SETTINGS
@given(doc=st.fixed_dictionaries({"cases": st.lists(_case_like(), max_size=3)}))
def test_structured_case_files_give_data_or_problems(tmp_path, doc):
    path = tmp_path / "fuzz.yaml"
    path.write_text(json.dumps(doc))  # JSON is YAML
    loaded, problems = cases.load_file(path)
    assert len(loaded) + len(problems) >= 1 or doc["cases"] == []
    for case in loaded:  # what loads must be usable
        assert case.p.values.shape == case.q.values.shape or case.broadcast


@SETTINGS
@given(
    lines=st.lists(
        st.one_of(
            st.binary(max_size=80),
            st.just(b'{"type":"check"}'),
            st.just(b'{"type":"end","exitstatus":0}'),
            st.just(b"[1,2]"),
        ),
        max_size=8,
    )
)
def test_results_reader_never_raises(tmp_path, lines):
    path = tmp_path / "results.jsonl"
    path.write_bytes(b"\n".join(lines))
    run = results.read(path)
    assert isinstance(run.records, list) and isinstance(run.problems, list)
