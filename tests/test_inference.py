"""Convention inference recovers every field of NumPy black boxes with known conventions, and says
`unknown`, naming the probe, for implementations no candidate describes. No framework needed."""

import dataclasses
import math

import numpy as np
import pytest

from conformance.inference import FIELDS, UNKNOWN, compare, infer
from conformance.inference.candidates import structural_candidates
from tests import fakes_conventions as fc

WEIGHTED = ({"sample_weight": "per_row"},)

# (id, truth, options, the fields it must report). Every value of every field appears at least once.
CASES = [
    (
        "torch-kl_div-batchmean",
        dict(),
        ({},),
        dict(
            p_argument="second",
            input_space={"first": "log_prob", "second": "prob"},
            elementwise="p*log(p/q)",
            reduction="mean_batch",
            class_axis=None,
            batch_divisor="dim0",
            batch_divisor_1d="classes",
            normalizes=False,
            zero_p="0",
            zero_both="0",
            zero_q="inf",
            clip_epsilon=None,
        ),
    ),
    (
        "p-first-prob-logprob",
        dict(p_index=0, spaces=("prob", "log_prob"), reduction="sum", class_axis=None),
        ({},),
        dict(
            p_argument="first",
            input_space={"first": "prob", "second": "log_prob"},
            reduction="sum",
            batch_divisor_1d="n/a",
        ),
    ),
    (
        "logits-q",
        dict(spaces=("logits", "prob"), reduction="mean_batch", batch_divisor="rows"),
        ({},),
        dict(
            input_space={"first": "logits", "second": "prob"}, class_axis=-1, batch_divisor="rows", batch_divisor_1d="1"
        ),
    ),
    (
        "logits-p",
        dict(p_index=0, spaces=("logits", "prob"), reduction="per_row"),
        ({},),
        dict(p_argument="first", input_space={"first": "logits", "second": "prob"}, reduction="per_row"),
    ),
    (
        "both-log",
        dict(spaces=("log_prob", "log_prob"), reduction="none", class_axis=None),
        ({},),
        dict(input_space={"first": "log_prob", "second": "log_prob"}, reduction="none", class_axis=None),
    ),
    (
        "generalized",
        dict(p_index=0, spaces=("prob", "prob"), elementwise="p*log(p/q)-p+q", reduction="per_row"),
        ({},),
        dict(elementwise="p*log(p/q)-p+q", reduction="per_row", class_axis=-1),
    ),
    (
        "mean_all",
        dict(reduction="mean_all", class_axis=None),
        ({},),
        dict(reduction="mean_all", batch_divisor="n/a", batch_divisor_1d="classes"),
    ),
    (
        "mean_batch-batch",
        dict(reduction="mean_batch", batch_divisor="batch"),
        ({},),
        dict(batch_divisor="batch", batch_divisor_1d="1", class_axis=None),
    ),
    ("class-axis-1", dict(spaces=("logits", "prob"), reduction="per_row", class_axis=1), ({},), dict(class_axis=1)),
    (
        "scipy-entropy",
        dict(p_index=0, spaces=("prob", "prob"), reduction="per_row", class_axis=0, normalizes=True),
        ({},),
        dict(class_axis=0, normalizes=True, reduction="per_row", elementwise="p*log(p/q)"),
    ),
    (
        "weighted-mean",
        dict(p_index=0, spaces=("prob", "prob"), reduction="mean_weighted", batch_divisor="weights"),
        WEIGHTED,
        dict(reduction="mean_weighted", batch_divisor="weights", batch_divisor_1d="weights"),
    ),
    (
        "weighted-mean-keras",
        dict(p_index=0, spaces=("prob", "prob"), reduction="mean_weighted", batch_divisor="batch"),
        WEIGHTED,
        dict(reduction="mean_weighted", batch_divisor="batch", batch_divisor_1d="1"),
    ),
    (
        "weights-ignored",
        dict(p_index=0, spaces=("prob", "prob"), reduction="mean_batch", batch_divisor="rows", uses_weights=False),
        WEIGHTED,
        dict(reduction="mean_batch, weights ignored", batch_divisor="rows"),
    ),
    (
        "zero-p-nan",
        dict(spaces=("log_prob", "log_prob"), zero_p="nan", zero_both="nan"),
        ({},),
        dict(zero_p="nan", zero_both="nan", zero_q="inf"),
    ),
    ("zero-both-nan", dict(zero_both="nan"), ({},), dict(zero_p="0", zero_both="nan", zero_q="inf")),
    (
        "zero-q-nan",
        dict(p_index=0, spaces=("prob", "prob"), reduction="per_row", zero_q="nan"),
        ({},),
        dict(zero_p="0", zero_both="0", zero_q="nan"),
    ),
    (
        "keras-clip",
        dict(
            p_index=0, spaces=("prob", "prob"), reduction="mean_batch", batch_divisor="rows", clip=1e-7, zero_q="finite"
        ),
        ({},),
        dict(clip_epsilon=1e-7, zero_p="0", zero_both="0", zero_q="finite"),
    ),
    (
        "clip-1e-4",
        dict(p_index=0, spaces=("prob", "prob"), reduction="none", class_axis=None, clip=1e-4, zero_q="finite"),
        ({},),
        dict(clip_epsilon=1e-4, zero_q="finite", reduction="none"),
    ),
]

UNDECLARABLE = {"weighted-mean-keras": ["batch_divisor", "batch_divisor_1d"], "weights-ignored": ["reduction"]}


@pytest.mark.parametrize("name, truth, options, expected", CASES, ids=[c[0] for c in CASES])
def test_inference_recovers_every_field(name, truth, options, expected):
    api = fc.make(f"fake.{name}", options=options, **truth)
    inference = infer(api, options[0])
    fields = inference.fields
    assert set(fields) == set(FIELDS)
    for field, want in expected.items():
        assert fields[field] == want, f"{field}: {fields[field]!r} ({inference.evidence[field]})"
    assert not [f for f, v in fields.items() if v == UNKNOWN], inference.evidence
    # The declaration is the truth, so the canonical declared fields agree on every field, except where
    # a Convention cannot say it: its mean_weighted always divides by the weights, also for one 1-D row,
    # and weights passed to the call are always applied.
    assert compare(inference, api, options[0]).disagreements == UNDECLARABLE.get(name, [])
    assert all(inference.evidence[f] for f in FIELDS)


def test_output_dtype_and_accumulation():
    narrow = infer(fc.make("fake.sums_in_float16", accumulate="input", reduction="sum", class_axis=None), {})
    assert narrow.fields["accumulation"] == {"float16": "input"}, narrow.evidence["accumulation"]
    assert "the two orders differ by" in narrow.evidence["accumulation"]
    wide = infer(fc.make("fake.returns_float32", output="float32", reduction="sum", class_axis=None), {})
    assert wide.fields["output_dtype"] == {"float16": "float32", "float32": "float32", "float64": "float32"}
    assert wide.fields["accumulation"] == {"float16": "higher"}
    elementwise = infer(fc.make("fake.elementwise", reduction="none", class_axis=None), {})
    assert elementwise.fields["accumulation"] == {"float16": "n/a"}
    assert elementwise.fields["output_dtype"] == {"float16": "float16", "float32": "float32", "float64": "float64"}


def test_misfit_is_unknown_with_the_probe_that_broke_every_candidate():
    inference = infer(fc.MISFIT, {})
    structural = (
        "p_argument",
        "input_space",
        "elementwise",
        "reduction",
        "class_axis",
        "batch_divisor",
        "batch_divisor_1d",
        "normalizes",
    )
    for field in structural:
        assert inference.fields[field] == UNKNOWN
        assert inference.evidence[field].startswith("no candidate fits: probe 2d[3x4]")
        assert "closest candidate" in inference.evidence[field]
    for field in ("zero_p", "zero_both", "zero_q", "clip_epsilon"):
        assert inference.fields[field] == UNKNOWN and "the structure is unknown" in inference.evidence[field]
    assert inference.convention() is None
    comparison = compare(inference, fc.MISFIT, {})
    assert set(comparison.disagreements) >= set(structural)


def test_zero_misfit_keeps_the_structure_and_names_the_zero_probe():
    api = fc.make("fake.zero_p_is_one", declared=fc.Truth(), zero_p="1")
    inference = infer(api, {})
    assert inference.fields["reduction"] == "mean_batch" and inference.fields["p_argument"] == "second"
    for field in ("zero_p", "zero_both", "zero_q", "clip_epsilon"):
        assert inference.fields[field] == UNKNOWN
        assert "probe zero_p (p = 0 < q at [0, 1])" in inference.evidence[field]


def test_clip_of_one_argument_only_is_unknown():
    api = fc.make(
        "fake.clips_p_only",
        declared=fc.Truth(p_index=0, spaces=("prob", "prob"), clip=1e-7),
        p_index=0,
        spaces=("prob", "prob"),
        clip=1e-7,
        misfit="clip_p_only",
    )
    inference = infer(api, {})
    assert inference.fields["reduction"] == "mean_batch"
    assert inference.fields["clip_epsilon"] == UNKNOWN
    assert "no clipping: q = 2.23e-308 gives the unclipped value" in inference.evidence["clip_epsilon"]


def test_inference_ignores_the_declaration():
    inference = infer(fc.DECLARES_BATCHMEAN, {})
    assert inference.fields["reduction"] == "mean_all"
    comparison = compare(inference, fc.DECLARES_BATCHMEAN, {})
    assert comparison.disagreements == ["reduction", "batch_divisor"]
    assert comparison.declared["reduction"] == "mean_batch"
    assert "reduction: declared mean_batch, inferred mean_all" in comparison.message
    assert "ruled out by 2d[3x4]" in comparison.message


def test_inference_is_cached_per_process():
    api = fc.make("fake.cached", reduction="sum", class_axis=None)
    first = infer(api, {})
    assert infer(api, {}) is first
    assert first.seconds > 0 and first.calls > 0


def test_an_inference_without_the_dtype_phase_calls_in_no_other_dtype_and_says_so():
    fed_dtypes: list[str] = []
    truth = fc.make("fake.dtypes_seen", reduction="none", class_axis=None)
    api = dataclasses.replace(
        truth, call=lambda fw, a, b, o, w: fed_dtypes.append(str(a.dtype)) or truth.call(fw, a, b, o, w)
    )
    partial = infer(api, {}, dtypes=False)
    assert set(fed_dtypes) == {"float64"}, "the structure and zeros are probed in float64 alone"
    assert partial.fields["output_dtype"] == partial.fields["accumulation"] == UNKNOWN
    assert "not probed" in partial.evidence["output_dtype"]
    assert (partial.fields["reduction"], partial.fields["zero_p"]) == ("none", "0")
    full = infer(api, {})
    assert full is not partial and full.fields["output_dtype"] == {d: d for d in api.dtypes}
    assert infer(api, {}, dtypes=False) is full, "a full inference serves a partial request"


def test_candidates_are_canonical_and_distinct():
    plain, weighted = structural_candidates(False), structural_candidates(True)
    assert len(set(plain)) == len(plain) and len(set(weighted)) == len(weighted)
    assert not any(c.reduction == "mean_weighted" for c in plain)
    # a sum over every element reads no class axis; a logits argument does (softmax runs along it)
    assert all(
        c.class_axis is None for c in plain if c.reduction == "sum" and not c.normalizes and "logits" not in c.spaces
    )
    assert any(c.class_axis == 1 for c in plain if c.reduction == "sum" and "logits" in c.spaces)


def test_clip_epsilon_is_measured_not_picked_from_a_list():
    eps = 3.5e-6
    api = fc.make("fake.clip_odd", p_index=0, spaces=("prob", "prob"), reduction="per_row", clip=eps, zero_q="finite")
    inference = infer(api, {})
    assert math.isclose(inference.fields["clip_epsilon"], eps, rel_tol=1e-12)
    assert "bisection" in inference.evidence["clip_epsilon"]


@pytest.mark.parametrize("eps", [1e-7, float(np.float32(1e-7))], ids=["1e-7", "float32(1e-7)"])
def test_a_clip_at_1e_7_through_float32_is_told_from_1e_7_in_float64(eps):
    # Keras on PyTorch clips float64 inputs at float32(1e-7), 1.2e-8 above 1e-7: bisection's tolerance cannot
    # part the two, the zero and clip-check probes can, so both the bound and the zero fields come out known
    api = fc.make("fake.clip_f32", p_index=0, spaces=("prob", "prob"), reduction="sum", clip=eps, zero_q="finite")
    inference = infer(api, {})
    assert inference.fields["clip_epsilon"] == eps, inference.evidence["clip_epsilon"]
    assert (inference.fields["zero_p"], inference.fields["zero_both"], inference.fields["zero_q"]) == (
        "0",
        "0",
        "finite",
    )


def test_an_api_that_always_raises_tells_nothing():
    def refuses(fw, a, b, o, w):
        raise ValueError("inputs must sum to one")

    api = fc.Api(
        name="fake.refuses",
        framework="numpy",
        call=refuses,
        convention=lambda o: fc.Truth().convention(),
        dtypes=("float32", "float64"),
        devices=("cpu",),
    )
    inference = infer(api, {})
    assert all(inference.fields[f] == UNKNOWN for f in FIELDS if f not in ("output_dtype", "accumulation"))
    assert inference.evidence["reduction"].startswith("no probe could be run: 2d[3x4] raised ValueError")
    assert inference.fields["output_dtype"] == {
        "float32": "error (ValueError: inputs must sum to one)",
        "float64": "error (ValueError: inputs must sum to one)",
    }
    assert inference.final is None


def test_lane_sums_add_each_element_into_its_lane_rounded_at_every_addition():
    """The vectorized lane sums equal the one-element-at-a-time definition, on every narrow dtype."""
    from conformance.dtypes import round_to
    from conformance.inference import accumulation

    def one_at_a_time(row, dtype):
        lanes = np.zeros(accumulation.LANES)
        for i, x in enumerate(row):
            lanes[i % accumulation.LANES] = float(round_to(np.array(lanes[i % accumulation.LANES] + x), dtype))
        while lanes.size > 1:
            lanes = round_to(lanes[0::2] + lanes[1::2], dtype).astype(np.float64)
        return float(lanes[0])

    rng = np.random.default_rng(1)
    for dtype in ("float16", "bfloat16", "float32"):
        for shape in [(1, 1), (3, 5), (4, 37), (2, 1000), (1, 16), (5, 17)]:
            values = rng.standard_normal(shape) * 10 ** rng.uniform(-3, 3, shape)
            rows = round_to(values, dtype).astype(np.float64)
            expected = [one_at_a_time(row, dtype) for row in rows]
            assert accumulation._lane_sums(rows, dtype).tolist() == expected, (dtype, shape)


def _bisect(fits, lo: int, hi: int, carrier, as_int) -> tuple[int, int]:
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(float(np.array(mid, as_int).view(carrier))) else (mid, hi)
    return lo, hi


@pytest.mark.parametrize("carrier, as_int", [(np.float64, np.int64), (np.float32, np.int32)])
@pytest.mark.parametrize(
    "threshold", [1e-7 * (1 - 3e-12), 1e-7, 1.0000000116860974e-07 * (1 - 1e-9), 1e-8, 3.5e-6, 2e-300]
)
def test_known_epsilons_narrow_the_clip_bisection_to_the_same_boundary(carrier, as_int, threshold):
    """Where the output follows q from a threshold on (a clip leaves the tolerance a little below its epsilon),
    bracketing around the known epsilons first ends on the pair a whole-range bisection finds, in fewer calls
    when the clip is at a known epsilon."""
    from conformance.inference import _known_epsilons_bracket

    calls = []

    def fits(x: float) -> bool:
        calls.append(x)
        return x >= carrier(threshold)

    smallest, top = float(np.finfo(carrier).tiny), 0.25
    bounds = (int(np.array(smallest, carrier).view(as_int)), int(np.array(top, carrier).view(as_int)))
    whole = _bisect(fits, *bounds, carrier, as_int)
    whole_calls, calls[:] = len(calls), []
    narrowed = _bisect(fits, *_known_epsilons_bracket(fits, *bounds, carrier, as_int), carrier, as_int)
    assert narrowed == whole
    near_known = any(abs(threshold / known - 1) < 1e-6 for known in (1e-7, 1e-8, 1.0000000116860974e-07))
    if near_known:
        assert len(calls) <= whole_calls * 0.6, (len(calls), whole_calls)
    else:
        assert len(calls) <= whole_calls + 5
