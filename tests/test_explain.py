"""`explain`: two calls on a case, their values, their ratio and the reason, from inferred conventions."""

import subprocess
import sys
from pathlib import Path

import pytest

from conformance import cases
from conformance.explain import explain
from tests import fakes_conventions as fc

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def corpus():
    return {c.id: c for c in cases.load_cases()}


def test_forum_example_factor_four(corpus):
    text = "\n".join(explain(fc.TORCH_MEAN, {}, fc.CE_MEAN, {}, corpus["forum-example"]))
    assert "B/A = 4.000" in text
    assert (
        "factor 4.000 = B·C/B = 4/1: A (reduction mean_all) divides the summed terms by every element "
        "(B·C = 1·4 = 4); B (reduction mean_batch) sums over classes and averages over the batch (÷ B = 1)"
    ) in text
    assert "value: 0.01790389651" in text and "value: 0.07161558603" in text
    assert text.count("the convention above reproduces it") == 2


def test_equal_calls_agree_within_error(corpus):
    batchmean = fc.make("fake.batchmean_dim0", reduction="mean_batch", batch_divisor="dim0", class_axis=None)
    text = "\n".join(explain(batchmean, {}, fc.CE_MEAN, {}, corpus["canonical-2x3"]))
    assert "A and B agree: |A - B| =" in text and "within twice the float64 tolerance" in text
    assert "the same on shape [2, 3]" in text


def test_one_dimensional_input_batchmean_divides_by_classes(corpus):
    batchmean = fc.make("fake.batchmean_1d", reduction="mean_batch", batch_divisor="dim0", class_axis=None)
    text = "\n".join(explain(batchmean, {}, fc.CE_MEAN, {}, corpus["one-row-1d"]))
    assert "B/A = 3.000" in text and "factor 3.000 = C/1 = 3/1" in text


def test_clipping_is_named_with_its_epsilon(corpus):
    plain = fc.make("fake.rows", p_index=0, spaces=("prob", "prob"), reduction="per_row")
    clipped = fc.make(
        "fake.rows_clipped", p_index=0, spaces=("prob", "prob"), reduction="per_row", clip=1e-7, zero_q="finite"
    )
    text = "\n".join(explain(plain, {}, clipped, {}, corpus["canonical-2x3"]))
    assert "clipping: B clips both arguments to [1e-07, 1]" in text
    assert "A and B agree" not in text


def test_elementwise_difference_is_named(corpus):
    rel_entr = fc.make("fake.rel_entr", p_index=0, spaces=("prob", "prob"), reduction="none", class_axis=None)
    kl_div = fc.make(
        "fake.kl_div_elementwise",
        p_index=0,
        spaces=("prob", "prob"),
        reduction="none",
        class_axis=None,
        elementwise="p*log(p/q)-p+q",
    )
    text = "\n".join(explain(rel_entr, {}, kl_div, {}, corpus["asymmetric-1x3"]))
    assert "elementwise: B adds q - p to every term" in text


def test_explain_command_on_plugins():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance",
            "explain",
            "fake.kl_div_mean",
            "--vs",
            "fake.cross_entropy_mean",
            "--api",
            "tests.fakes_conventions:plugin_apis",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "KLCONF_CACHE_DIR": "off", "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "case forum-example [1, 4]" in proc.stdout and "factor 4.000 = B·C/B" in proc.stdout


def test_explain_command_rejects_unknown_option_values():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance",
            "explain",
            "torch.nn.functional.kl_div",
            "--option",
            "reduction=avg",
            "--vs",
            "torch.nn.functional.cross_entropy-entropy",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "reduction=avg is not covered (values: mean, none, sum, batchmean)" in proc.stderr
