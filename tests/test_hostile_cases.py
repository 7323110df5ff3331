"""Malformed and hostile case files: each is refused with one problem naming file, line and field,
in bounded time and memory, by the loaders and by `klconf cases check --cases FILE`."""

from __future__ import annotations

import contextlib
import io
import time
import tracemalloc
from pathlib import Path

import pytest

from conformance import cases, cli, safe_yaml
from conformance.distributions import cases as distribution_cases

VALID = """\
cases:
  - id: ok
    description: fine
    p: {probs: [[0.25, 0.75]]}
    q: {probs: [[0.5, 0.5]]}
"""
DIST = """\
distribution_cases:
  - id: ok
    description: fine
    p: {family: normal, loc: [0.0], scale: [1.0]}
    q: {family: normal, loc: [1.0], scale: [2.0]}
"""


def laughs(levels: int = 10, anchor_line: int = 3) -> str:
    """The "billion laughs": each level is a list of nine aliases to the one before (9^levels strings)."""
    lines = ["cases:", "  - id: lol", '    description: &l0 "lol"']
    for i in range(1, levels):
        lines.append(f"    l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    lines += ["    p: {probs: [[0.5, 0.5]]}", "    q: {probs: [[0.5, 0.5]]}"]
    return "\n".join(lines) + "\n"


def dist(p: str, q: str) -> str:
    return DIST.replace("{family: normal, loc: [0.0], scale: [1.0]}", p).replace(
        "{family: normal, loc: [1.0], scale: [2.0]}", q
    )


def replaced(old: str, new: str, base: str = VALID) -> str:
    assert old in base
    return base.replace(old, new, 1)


def case_with(extra: str, base: str = VALID) -> str:
    return base + extra


# (kind, content: str | bytes, line, field, words in the message); the file is always c.yaml
HOSTILE = [
    # --- resource limits
    ("alias-bomb", laughs(), 8, "cases[0].l5[2]", "exceeds the element limit"),
    (
        "alias-bomb-in-data",
        "cases: &a ["
        + ", ".join(["1"] * 9)
        + "]\n"
        + "".join(f"b{i}: &b{i} [" + ", ".join([f"*{'a' if i == 0 else f'b{i - 1}'}"] * 9) + "]\n" for i in range(8)),
        5,
        "b3[2]",
        "exceeds the element limit",
    ),
    (
        "alias-fan-out",
        "a: &a [" + ", ".join(["0"] * 2000) + "]\nb: [" + ", ".join(["*a"] * 50) + "]\n",
        2,
        "b[11]",
        "exceeds the element limit",
    ),
    ("deep-flow-nesting", "cases: " + "[" * 100_000 + "]" * 100_000 + "\n", 1, None, "exceeds the depth limit"),
    (
        "deep-block-nesting",
        "cases:\n" + "".join("  " * (i + 1) + "- \n" for i in range(200)),
        33,
        None,
        "exceeds the depth limit",
    ),
    (
        "deep-through-alias",
        "a: &a " + "[" * 20 + "1" + "]" * 20 + "\nb: " + "[" * 20 + "*a" + "]" * 20 + "\n",
        2,
        None,
        "exceeds the depth limit",
    ),
    ("huge-file", None, None, "", "exceeds the limit of 1,048,576 bytes"),  # 500 MB, sparse: see _write
    (
        "million-keys",
        "cases: {" + ", ".join(f"k{i}: 0" for i in range(1_000_000)) + "}\n",
        None,
        "",
        "exceeds the limit of 1,048,576 bytes",
    ),
    (
        "many-keys",
        "x: {" + ", ".join(f"k{i}: 0" for i in range(40_000)) + "}\n",
        1,
        "x.k12498",
        "exceeds the element limit",
    ),
    ("long-list", "cases: [" + ",".join(["0"] * 30_000) + "]\n", 1, "cases[24997]", "exceeds the element limit"),
    (
        "long-scalar",
        replaced("description: fine", "description: " + "x" * 70_000),
        3,
        "cases[0].description",
        "70,000 characters exceeds the limit",
    ),
    (
        "long-number",
        replaced("0.25, 0.75", "0." + "3" * 5000 + ", 0.75"),
        4,
        "cases[0].p.probs[0][0]",
        "not a plausible value",
    ),
    # --- encoding and characters
    ("latin-1", VALID.replace("fine", "caf\u00e9").encode("latin-1"), 3, "", "not UTF-8: byte 0xe9"),
    ("utf8-bom", b"\xef\xbb\xbf" + VALID.encode(), 1, "", "UTF-8 byte-order mark"),
    ("utf16", VALID.encode("utf-16"), 1, "", "UTF-16 LE byte-order mark"),
    ("nul-byte", VALID.replace("fine", "fi\0ne").encode(), 3, "", "NUL byte"),
    ("tab-indent", VALID.replace("    q:", "\tq:"), 5, "", "tab character at column 1"),
    # --- YAML structure
    ("duplicate-top-key", VALID + "cases: []\n", 6, "cases", "duplicate key 'cases' (first on line 1)"),
    ("duplicate-case-key", replaced("    p: {", "    id: again\n    p: {"), 4, "cases[0].id", "duplicate key 'id'"),
    (
        "duplicate-flow-key",
        replaced("{probs: [[0.25, 0.75]]}", "{probs: [[0.25, 0.75]], probs: [[1.0, 0.0]]}"),
        4,
        "cases[0].p.probs",
        "duplicate key 'probs'",
    ),
    (
        "python-tag",
        replaced("description: fine", 'description: !!python/object/apply:os.system ["true"]'),
        3,
        "cases[0].description",
        "unsafe or unknown YAML tag",
    ),
    ("python-name-tag", "cases: !!python/name:os.system\n", 1, "cases", "unsafe or unknown YAML tag"),
    (
        "custom-tag",
        replaced("description: fine", "description: !mine fine"),
        3,
        "cases[0].description",
        "unsafe or unknown YAML tag rejected: '!mine'",
    ),
    (
        "binary-tag",
        replaced("description: fine", "description: !!binary aGk="),
        3,
        "cases[0].description",
        "unsafe or unknown YAML tag",
    ),
    ("set-tag", "cases: !!set {a, b}\n", 1, "cases", "unsafe or unknown YAML tag"),
    ("two-documents", VALID + "---\n" + VALID, 6, "", "more than one document"),
    ("recursive-alias", "cases: &c [*c]\n", 1, "cases[0]", "recursive structure"),
    ("undefined-alias", replaced("{probs: [[0.5, 0.5]]}", "*nothing"), 5, "cases[0].q", "names no anchor"),
    ("integer-key", "cases:\n  - 1: x\n", 2, "cases[0]", "mapping keys must be plain names"),
    ("collection-key", "? [a, b]\n: 1\n", 1, "", "mapping keys must be plain names, found a collection"),
    ("unclosed-bracket", replaced("[[0.5, 0.5]]}", "[[0.5, 0.5]}"), 5, "cases[0].q.probs", "YAML error"),
    ("bad-indent", VALID.replace("    q:", "   q:"), 5, "cases", "YAML error"),
    # --- the document's shape
    ("empty-file", "", None, "", "found an empty file"),
    ("only-comments", "# nothing here\n# at all\n", None, "", "found an empty file"),
    ("top-level-list", "- 1\n- 2\n", 1, "", "found a list"),
    ("top-level-scalar", "hello\n", 1, "", "found a str"),
    ("empty-mapping", "{}\n", 1, "", "'cases' is required"),
    ("unknown-top-field", VALID + "extra: 1\n", 1, "", "unknown field(s): 'extra'"),
    ("empty-case-list", "cases: []\n", 1, "cases", "should be non-empty"),
    ("case-not-mapping", "cases: [3]\n", 1, "cases[0]", "is not of type 'object'"),
    ("missing-id", VALID.replace("  - id: ok\n    description", "  - description"), 2, "cases[0]", "'id' is required"),
    ("missing-description", VALID.replace("    description: fine\n", ""), 2, "cases[0]", "'description' is required"),
    ("missing-q", VALID.replace("    q: {probs: [[0.5, 0.5]]}\n", ""), 2, "cases[0]", "'q' is required"),
    ("unknown-case-field", case_with("    colour: blue\n"), 2, "cases[0]", "unknown field(s): 'colour'"),
    ("id-not-string", replaced("id: ok", "id: 42"), 2, "cases[0].id", "42 is not of type 'string'"),
    ("id-bad-pattern", replaced("id: ok", "id: Not OK"), 2, "cases[0].id", "does not match"),
    (
        "description-empty",
        replaced("description: fine", 'description: ""'),
        3,
        "cases[0].description",
        "should be non-empty",
    ),
    ("tags-not-list", case_with("    tags: edge\n"), 6, "cases[0].tags", "is not of type 'array'"),
    ("unknown-dtype", case_with("    dtypes: [float8]\n"), 6, "cases[0].dtypes[0]", "'float8' is not one of"),
    (
        "flag-not-boolean",
        case_with("    out_of_domain: maybe\n"),
        6,
        "cases[0].out_of_domain",
        "is not of type 'boolean'",
    ),
    ("unknown-property", case_with("    properties: [symmetry]\n"), 6, "cases[0].properties[0]", "is not one of"),
    # --- the numbers
    (
        "probs-and-logits",
        replaced("{probs: [[0.25, 0.75]]}", "{probs: [[0.25, 0.75]], logits: [[0.0, 0.0]]}"),
        4,
        "cases[0].p",
        "unknown field(s): 'logits'",
    ),
    (
        "string-probability",
        replaced("0.25, 0.75", "0.25, lots"),
        4,
        "cases[0].p.probs[0][1]",
        "'lots' is not of type 'number'",
    ),
    (
        "date-probability",
        replaced("0.25, 0.75", "0.25, 2024-01-01"),
        4,
        "cases[0].p.probs[0][1]",
        "'2024-01-01' is not of type 'number'",
    ),
    (
        "ragged-rows",
        replaced("[[0.25, 0.75]]", "[[0.25, 0.75], [1.0]]"),
        4,
        "cases[0].p.probs",
        "rows of unequal width",
    ),
    (
        "scalar-distribution",
        replaced("[[0.25, 0.75]]", "0.25"),
        4,
        "cases[0].p.probs",
        "a scalar is not a distribution",
    ),
    ("negative-probability", replaced("0.25, 0.75", "-0.25, 1.25"), 4, "cases[0].p.probs", "negative probabilities"),
    ("nan-probability", replaced("0.25, 0.75", ".nan, 0.75"), 4, "cases[0].p.probs", "NaN or infinite entries"),
    (
        "shape-mismatch",
        replaced("{probs: [[0.5, 0.5]]}", "{probs: [[0.2, 0.3, 0.5]]}"),
        5,
        "cases[0].q",
        "differs from p's shape",
    ),
    (
        "unknown-generator",
        replaced("{probs: [[0.5, 0.5]]}", "{generator: magic, shape: [1, 2], seed: 1}"),
        5,
        "cases[0].q.generator",
        "unknown generator 'magic'",
    ),
    (
        "negative-seed",
        replaced("{probs: [[0.5, 0.5]]}", "{generator: uniform, shape: [1, 2], seed: -1}"),
        5,
        "cases[0].q.seed",
        "less than the minimum of 0",
    ),
    (
        "fractional-seed",
        replaced("{probs: [[0.5, 0.5]]}", "{generator: uniform, shape: [1, 2], seed: 1.5}"),
        5,
        "cases[0].q.seed",
        "is not of type 'integer'",
    ),
    (
        "float-seed",
        replaced("{probs: [[0.5, 0.5]]}", "{generator: uniform, shape: [1, 2], seed: 3.0}"),
        5,
        "cases[0].q.seed",
        "must be an integer, found 3.0",
    ),
    (
        "absurd-seed",
        replaced("{probs: [[0.5, 0.5]]}", "{generator: uniform, shape: [1, 2], seed: 9" + "9" * 22 + "}"),
        5,
        "cases[0].q.seed",
        "not a plausible seed",
    ),
    (
        "huge-shape",
        replaced("{probs: [[0.5, 0.5]]}", "{generator: dirichlet, shape: [1000000, 1000000], seed: 1}"),
        5,
        "cases[0].q.shape",
        "1,000,000,000,000 values exceed the limit",
    ),
    (
        "float-dimension",
        replaced("{probs: [[0.5, 0.5]]}", "{generator: uniform, shape: [1, 2.0], seed: 1}"),
        5,
        "cases[0].q.shape[1]",
        "must be an integer, found 2.0",
    ),
    (
        "empty-class-axis",
        replaced("{probs: [[0.5, 0.5]]}", "{generator: uniform, shape: [2, 0], seed: 1}"),
        5,
        "cases[0].q.shape",
        "class axis (last) must not be empty",
    ),
    (
        "infinite-parameter",
        replaced("{probs: [[0.5, 0.5]]}", "{generator: dirichlet, shape: [1, 2], seed: 1, alpha: .inf}"),
        5,
        "cases[0].q.alpha",
        "must be a finite number",
    ),
    (
        "expected-wrong-shape",
        case_with("    expected: {kl_per_row: [0.1, 0.2], provenance: x}\n"),
        6,
        "cases[0].expected.kl_per_row",
        "does not match the inputs",
    ),
    # --- distribution cases
    (
        "unknown-family",
        replaced("family: normal, loc: [1.0]", "family: normul, loc: [1.0]", DIST),
        5,
        "distribution_cases[0].q.family",
        "unknown family 'normul'",
    ),
    (
        "missing-parameter",
        replaced(", scale: [2.0]", "", DIST),
        5,
        "distribution_cases[0].q",
        "needs parameter 'scale'",
    ),
    (
        "parameter-out-of-domain",
        replaced("scale: [2.0]", "scale: [-2.0]", DIST),
        5,
        "distribution_cases[0].q.scale",
        "must be > 0",
    ),
    (
        "parameter-infinite",
        replaced("loc: [1.0]", "loc: [.inf]", DIST),
        5,
        "distribution_cases[0].q.loc",
        "NaN or infinite entries",
    ),
    (
        "parameter-not-number",
        replaced("loc: [1.0]", "loc: [one]", DIST),
        5,
        "distribution_cases[0].q.loc[0]",
        "'one' is not of type 'number'",
    ),
    (
        "count-not-whole",
        dist("{family: binomial, total_count: 2.5, probs: 0.5}", "{family: binomial, total_count: 2.0, probs: 0.5}"),
        4,
        "distribution_cases[0].p.total_count",
        "must be whole numbers",
    ),
    (
        "endless-exact-sum",
        dist("{family: binomial, total_count: 1.0e+12, probs: 0.5}", "{family: poisson, rate: 3.0}"),
        4,
        "distribution_cases[0].p",
        "more than 10,000",
    ),
    (
        "long-exact-sums",
        dist(
            "{family: binomial, total_count: 9000.0, probs: [0.5, 0.25]}",
            "{family: binomial, total_count: 9001.0, probs: 0.5}",
        ),
        4,
        "distribution_cases[0].p",
        "would take 18,002 terms",
    ),
    (
        "uncovered-pair",
        dist("{family: normal, loc: 0.0, scale: 1.0}", "{family: poisson, rate: 3.0}"),
        5,
        "distribution_cases[0].q.family",
        "no closed form for normal || poisson",
    ),
    (
        "event-size-mismatch",
        dist("{family: categorical, probs: [0.5, 0.5]}", "{family: categorical, probs: [0.2, 0.3, 0.5]}"),
        5,
        "distribution_cases[0].q",
        "event size 3 differs from p's 2",
    ),
    ("unknown-dist-field", DIST + "    colour: blue\n", 2, "distribution_cases[0]", "unknown field(s): 'colour'"),
]
BOMBS = {
    "alias-bomb",
    "alias-bomb-in-data",
    "alias-fan-out",
    "deep-flow-nesting",
    "deep-block-nesting",
    "deep-through-alias",
    "huge-file",
    "million-keys",
    "many-keys",
    "long-list",
    "long-scalar",
    "long-number",
}


def _write(tmp_path: Path, kind: str, content) -> Path:
    path = tmp_path / "c.yaml"
    if kind == "huge-file":
        with open(path, "wb") as handle:  # sparse: 500 MB on paper, nothing on disk
            handle.truncate(500 << 20)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _problems(path: Path) -> list:
    _, tensor_problems = cases.load_corpus(path)
    _, distribution_problems = distribution_cases.load_corpus(path)
    return tensor_problems + distribution_problems


def test_the_table_holds_at_least_forty_kinds():
    kinds = [row[0] for row in HOSTILE]
    assert len(kinds) == len(set(kinds)) and len(kinds) >= 40


@pytest.mark.parametrize("kind, content, line, field, words", HOSTILE, ids=[row[0] for row in HOSTILE])
def test_loaders_give_one_problem_with_file_line_and_field(tmp_path, kind, content, line, field, words):
    path = _write(tmp_path, kind, content)
    safe_yaml._parse_cached.cache_clear()
    started = time.process_time()  # CPU time: the wall clock of a shared machine measures the neighbours
    problems = _problems(path)
    seconds = time.process_time() - started
    assert len(problems) == 1, problems
    [problem] = problems
    assert problem.file.endswith("c.yaml") and problem.line == line, problem
    if field is not None:
        assert problem.field == field, problem
    assert words in problem.message, problem
    if kind in BOMBS:
        assert seconds < 1.0, f"{kind}: {seconds:.2f} s of CPU"


@pytest.mark.parametrize(
    "kind, content",
    [(row[0], row[1]) for row in HOSTILE if row[0] in BOMBS],
    ids=sorted(BOMBS, key=[row[0] for row in HOSTILE].index),
)
def test_hostile_files_are_refused_in_bounded_memory(tmp_path, kind, content):
    path = _write(tmp_path, kind, content)
    safe_yaml._parse_cached.cache_clear()
    tracemalloc.start()
    try:
        with pytest.raises(safe_yaml.YamlError):
            safe_yaml.load_path(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    budget = 4 * safe_yaml.LIMITS.max_bytes + (24 << 20)  # the text (bytes and str), and the nodes up to the limits
    assert peak < budget, f"{kind}: peak {peak / 2**20:.1f} MiB"


@pytest.mark.parametrize("kind, content, line, field, words", HOSTILE, ids=[row[0] for row in HOSTILE])
def test_cases_check_prints_one_problem_and_fails(tmp_path, kind, content, line, field, words):
    path = _write(tmp_path, kind, content)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["cases", "check", "--cases", str(path)])
    lines = out.getvalue().splitlines()
    assert code == 1
    assert len(lines) == 2 and lines[-1].endswith("; 1 problem(s)"), lines
    where = f"c.yaml:{line}: " if line else "c.yaml: "
    assert where in lines[0] and words in lines[0], lines[0]


def test_limits_are_exact_edges(tmp_path):
    """A document at a limit loads; one element more is refused."""
    limits = safe_yaml.Limits(max_nodes=10, max_depth=3)
    safe_yaml.parse("[1, 2, 3, 4, 5, 6, 7, 8, 9]", limits)  # 10 nodes: the list and 9 scalars
    with pytest.raises(safe_yaml.YamlError, match="element limit"):
        safe_yaml.parse("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]", limits)
    safe_yaml.parse("[[1]]", limits)  # 3 levels: two lists and a scalar
    with pytest.raises(safe_yaml.YamlError, match="depth limit"):
        safe_yaml.parse("[[[1]]]", limits)
    with pytest.raises(safe_yaml.YamlError, match="element limit"):  # 1 + 4 + 4 x 2: each alias counts its subtree
        safe_yaml.parse("a: &a [1]\nb: [*a, *a, *a, *a, *a]", safe_yaml.Limits(max_nodes=10))
    with pytest.raises(safe_yaml.YamlError, match="alias \\*a nests deeper than 3"):  # [*a] reaches 4 levels
        safe_yaml.parse("a: &a [1]\nb: [*a]", limits)


def test_anchors_and_aliases_within_the_limits_still_work(tmp_path):
    text = (
        VALID.replace("q: {probs: [[0.5, 0.5]]}", "q: &same {probs: [[0.5, 0.5]]}")
        + "  - id: again\n    description: q reused\n    p: *same\n    q: *same\n"
    )
    [first, second] = cases.load_cases(_write(tmp_path, "anchors", text))
    assert second.p.spec == first.q.spec and second.line == 6


@pytest.mark.parametrize(
    "text, line, words",
    [
        (laughs().replace("cases:", "expectations:"), 8, "exceeds the element limit"),
        ("expectations:\n  - id: a\n    id: b\n", 3, "duplicate key 'id'"),
        ("expectations: !!python/object/new:dict {}\n", 1, "unsafe or unknown YAML tag"),
    ],
)
def test_hostile_expectations_manifests_are_one_problem(tmp_path, text, line, words):
    from conformance import expectations, frameworks

    (tmp_path / "m.yaml").write_text(text)
    manifest = expectations.load(tmp_path, [], frameworks.builtin_apis(), distribution_cases=[])
    assert len(manifest.problems) == 1, manifest.problems
    [problem] = manifest.problems
    assert problem.file.endswith("m.yaml") and problem.line == line and words in problem.message, problem


def test_a_file_rewritten_in_place_is_read_again(tmp_path):
    """Parses are remembered by content: a same-size rewrite within the file system's time-stamp
    granularity still reads the new text."""
    path = _write(tmp_path, "rewrite", VALID)
    assert cases.load_cases(path)[0].id == "ok"
    path.write_text(VALID.replace("id: ok", "id: ko"))
    assert cases.load_cases(path)[0].id == "ko"
