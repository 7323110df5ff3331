"""The one table of convention fields: the oracle's input, the declared and inferred conventions and the
"one field away" alternatives all derive from it, so they cannot drift apart."""

from __future__ import annotations

import dataclasses

import pytest

from conformance import convention_fields as fields
from conformance import conventions, oracle
from conformance.inference import candidates
from conformance.porting import fed

DECLARED = conventions.Convention(("input", "target"), "target", ("log_prob", "prob"), "mean_batch")


def test_every_oracle_input_is_a_field_of_the_table():
    spec_fields = {f.name for f in dataclasses.fields(oracle.Spec)} - {"p_space", "q_space"}
    assert spec_fields == {f.spec_name for f in fields.FIELDS if f.spec_name}


@pytest.mark.parametrize("field", [f.name for f in fields.FIELDS])
def test_declared_and_inferred_conventions_carry_every_field(field):
    candidate = candidates.from_convention(DECLARED, weights_fed=False)
    assert hasattr(DECLARED, field) and hasattr(candidate, field)
    entry = fields.BY_NAME[field]
    assert entry.words and (entry.absent or entry.values)
    default = next((f.default for f in dataclasses.fields(conventions.Convention) if f.name == field), None)
    if entry.default is not None:
        assert default == entry.default


def test_spec_is_read_from_the_table_for_both_views():
    conv = DECLARED.replace(normalizes=True, zero_q="nan", clip_epsilon=1e-7)
    spec = conv.spec()
    assert (spec.normalize, spec.zero_q, spec.clip_epsilon, spec.reduction) == (True, "nan", 1e-7, "mean_batch")
    assert (spec.p_space, spec.q_space) == ("prob", "log_prob")  # P is the target
    candidate = candidates.from_convention(conv, weights_fed=False)
    assert candidate.spec(2).normalize is candidate.normalizes


@pytest.mark.parametrize(
    "bad",
    [
        dict(zero_q="zero"),
        dict(reduction="median"),
        dict(elementwise="p*q"),
        dict(batch_divisor="classes"),
        dict(zero_both="1"),
    ],
)
def test_a_value_outside_the_table_is_refused(bad):
    with pytest.raises(ValueError, match="invalid convention"):
        DECLARED.replace(**bad)


def test_one_field_away_follows_the_table():
    away = list(fields.one_field_away(DECLARED, [f.name for f in fields.FIELDS if f.name != "input_space"], "declared"))
    changes = {(name, value) for _, name, value in away}
    assert ("reduction", "none") not in changes  # the output's shape changes: not one field away
    assert {("batch_divisor", d) for d in oracle.BATCH_DIVISORS if d != "dim0"} <= changes
    assert {v for n, v in changes if n == "clip_epsilon"} == set(fields.values("clip_epsilon"))
    assert "zero_q=nan (declared inf)" in [label for label, _, _ in away]
    # the divisor is not a field of a convention that does not divide by a batch
    summed = DECLARED.replace(reduction="sum")
    assert not any(n == "batch_divisor" for _, n, _ in fields.one_field_away(summed, ["batch_divisor"], "x"))
    clipped = DECLARED.replace(clip_epsilon=1e-8)
    assert list(fields.one_field_away(clipped, ["clip_epsilon"], "declared")) == [
        ("no clipping (declared 1e-08)", "clip_epsilon", None)
    ]


def test_the_judge_and_porting_enumerate_the_same_fields():
    judged = {label.split("=")[0].split(" (")[0] for label, _ in conventions.variants(DECLARED)}
    candidate = candidates.from_convention(DECLARED, weights_fed=False)
    ported = {label.split("=")[0].split(" (")[0] for label, _ in fed.variants(candidate, False)}
    named = {f.name for f in fields.FIELDS} | {"no clipping"}
    assert ported - named == set() and {"reduction", "zero_q", "normalizes", "batch_divisor"} <= judged & ported


def test_the_explain_walk_moves_every_oracle_input_once():
    from conformance.explain import CHAIN

    target = DECLARED.replace(normalizes=True, zero_q="nan", clip_epsilon=1e-7, batch_divisor="rows").spec()
    keys = [key for group in CHAIN for key in fields.spec_changes(target, group)]
    assert sorted(keys) == sorted(f.name for f in dataclasses.fields(oracle.Spec))
    assert fields.spec_changes(target, ["normalizes", "input_space"]) == {
        "normalize": True,
        "p_space": "prob",
        "q_space": "log_prob",
    }
