"""`klconf cases check` recomputes every stored value; `klconf cases fill` writes them, keeping comments."""

import shutil
import textwrap
from pathlib import Path

from conformance import cases, stored
from conformance.cli import main

BASICS = Path(__file__).resolve().parent.parent / "cases" / "pointwise" / "basics.yaml"


def test_bundled_corpus_is_confirmed(capsys):
    assert main(["cases", "check"]) == 0
    assert "0 problem(s)" in capsys.readouterr().out


def test_value_altered_in_its_10th_significant_digit_is_caught(tmp_path, capsys):
    text = BASICS.read_text()
    original = "0.07161558603020723"
    assert original in text
    altered = tmp_path / "basics.yaml"
    altered.write_text(text.replace(original, "0.07161558613020723"))  # 10th significant digit: 0 -> 1
    assert main(["cases", "check", "--cases", str(altered)]) == 1
    out = capsys.readouterr().out
    assert "forum-example.expected.kl_per_row[0]" in out and "0.07161558603020723" in out
    assert f"{altered}:" in out or "basics.yaml:" in out


def test_changed_generator_output_is_caught(tmp_path, capsys):
    shutil.copy(BASICS.parent / "batches.yaml", tmp_path / "b.yaml")
    path = tmp_path / "b.yaml"
    path.write_text(
        path.read_text().replace("seed: 11, sha256: fbf170ab25ececc1", "seed: 13, sha256: fbf170ab25ececc1")
    )
    assert main(["cases", "check", "--cases", str(path)]) == 1
    assert "dirichlet-8x5.p.sha256" in capsys.readouterr().out


def test_fill_inserts_values_and_keeps_comments(tmp_path):
    path = tmp_path / "new.yaml"
    path.write_text(
        textwrap.dedent("""\
        # a comment that must survive
        cases:
          - id: fresh
            description: no values yet
            p: {probs: [[0.5, 0.5]]}   # trailing comment
            q: {probs: [[0.25, 0.75]]}
          - id: generated
            description: a generator without its fingerprint
            p: {generator: dirichlet, shape: [2, 3], seed: 3}
            q: {generator: uniform, shape: [2, 3], seed: 0}
        """)
    )
    changes, problems = stored.fill(path)
    assert problems == [] and len(changes) == 4
    text = path.read_text()
    assert "# a comment that must survive" in text and "# trailing comment" in text
    loaded = cases.load_cases(path)
    assert all(stored.verify(c) == [] for c in loaded)
    assert loaded[0].expected["provenance"].startswith("certified: |exact - stored| <= ")
    assert len(loaded[1].p.spec["sha256"]) == 16
    assert stored.fill(path) == ([], [])  # idempotent


def test_fill_update_rewrites_a_wrongly_signed_zero_and_states_the_bound(tmp_path):
    """The exact KL of logits [0, 1e4, 0] against [0, 9999, 0] is positive (about e^-9999): +0.0."""
    path = tmp_path / "c.yaml"
    path.write_text(
        textwrap.dedent("""\
        cases:
          - id: dominant
            description: a dominant class on both sides
            p: {logits: [[0.0, 10000.0, 0.0]]}
            q: {logits: [[0.0, 9999.0, 0.0]]}
            expected:
              kl_per_row: [-0.0]
              provenance: "mpmath 1.3.0, 50 digits"
        """)
    )
    changes, problems = stored.fill(path, update=True)
    assert problems == [] and changes == [f"{path}: dominant: expected values replaced"]
    case = cases.load_cases(path)[0]
    assert str(case.expected["kl_per_row"][0]) == "0.0" and stored.verify(case) == []
    assert case.expected["provenance"].startswith("certified: |exact - stored| <= ")
    assert stored.fill(path, update=True) == ([], [])  # idempotent: values and provenance agree
