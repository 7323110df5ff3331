"""The release matrix: the release table, environments keyed by their pins, install failures kept with
the installer's reason, each release's results and summary; and the bisection's search logic against a
fake installer and runner (it finds the planted release and installs no more than a binary search needs)."""

from __future__ import annotations

import json
import math
import stat
from pathlib import Path

import pytest

from conformance.cli import main
from conformance.matrix import bisect, envs, releases
from conformance.matrix.envs import Installed, UvInstaller
from conformance.matrix.run import Selection, load_summary, run_release
from conformance.results import Record
from tests.test_report_records import record, write_results

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- the release table


def test_release_table_covers_the_ranges_asked_for():
    jax = releases.FAMILIES["jax"]
    assert jax.versions[0] == "0.4.25" and jax.versions[-1] == "0.10.2" and len(jax.versions) >= 10
    for name, first, last in (
        ("optax", "0.2.2", "0.2.8"),
        ("scipy", "1.13", "1.17"),
        ("keras", "3.10", "3.15"),
        ("tensorflow", "2.19", "2.21"),
        ("tfp", "0.24", "0.25"),
        ("torch", "2.13", "2.15"),
    ):
        family = releases.FAMILIES[name]
        assert family.versions[0].startswith(first) and family.versions[-1].startswith(last), name
    for family in releases.FAMILIES.values():
        ordered = sorted(family.versions, key=releases.version_key)
        assert list(family.versions) == ordered, f"{family.name} releases out of order"
        assert set(family.versions) <= set(family.history or family.versions)
        for release in family.releases():
            assert any(release.version.split("+")[0] in pin for pin in release.requirements), release


def test_version_order_and_selection():
    assert releases.version_key("0.9.0.1") > releases.version_key("0.9.0")
    assert releases.version_key("0.10.0") > releases.version_key("0.9.2")
    assert releases.version_key("2.13.0+cpu") == releases.version_key("2.13.0")
    assert [r.label for r in releases.select(["jax-0.4.25", "scipy==1.13.1"])] == ["jax-0.4.25", "scipy-1.13.1"]
    assert releases.select(["jax-0.4.25"])[0].requirements[-1] == "numpy<2"
    assert releases.select(["torch-2.13.0"])[0].requirements == ("torch==2.13.0+cpu",)
    everything = releases.select(None)
    assert everything[0].family == "jax" and everything[-1].label == "torch-2.15.0"
    with pytest.raises(KeyError):
        releases.select(["pytorch-2.0"])
    between = releases.FAMILIES["jax"].between("0.4.34", "0.5.0")
    assert [r.version for r in between] == ["0.4.34", "0.4.35", "0.4.36", "0.4.37", "0.4.38", "0.5.0"]
    matrix_only = releases.FAMILIES["jax"].between("0.5.0", "0.4.34", every=False)
    assert [r.version for r in matrix_only] == ["0.4.34", "0.4.36", "0.5.0"]
    with pytest.raises(KeyError):
        releases.FAMILIES["jax"].between("0.4.34", "0.4.99")
    # a release not in the table (one published today) still gets its family's pins
    assert releases.select(["jax-0.11.0"])[0].requirements[:2] == ("jax==0.11.0", "jaxlib==0.11.0")


def test_matrix_list_and_unknown_release(capsys):
    assert main(["matrix", "--list", "torch"]) == 0
    out = capsys.readouterr().out
    assert "torch-2.13.0" in out and "torch==2.13.0+cpu" in out and "torch-2.15.0" in out
    assert main(["matrix", "--list", "caffe"]) == 2


# --------------------------------------------------------------------------- environments


def _fake_uv(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "uv"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_environments_are_keyed_by_their_pins(tmp_path):
    installer = UvInstaller(ROOT, tmp_path)
    a, b = releases.select(["jax-0.4.25"])[0], releases.select(["jax-0.4.28"])[0]
    assert installer.key(a) == installer.key(a) and installer.key(a) != installer.key(b)
    assert installer.key(a).startswith("jax-0.4.25-")


def test_install_failure_keeps_the_installers_reason(tmp_path, monkeypatch):
    uv = _fake_uv(
        tmp_path,
        'case "$1" in venv) mkdir -p "$5/bin"; exit 0;; esac\n'
        'echo "  x No solution found when resolving dependencies:" >&2\n'
        'echo "  jaxlib==9.9.9 has no wheels for cp311" >&2\nexit 1\n',
    )
    monkeypatch.setattr(envs, "uv_binary", lambda: str(uv))
    release = releases.FAMILIES["jax"].release("0.4.25")
    outcome = UvInstaller(ROOT, tmp_path / "envs").install(release)
    assert not outcome.ok and "has no wheels for cp311" in outcome.reason and "No solution" in outcome.reason
    assert not Path(outcome.env).exists()  # nothing half-made is left to be mistaken for an environment


def test_finished_environment_is_reused_without_the_installer(tmp_path, monkeypatch):
    monkeypatch.setattr(envs, "uv_binary", lambda: pytest.fail("the installer must not run"))
    installer = UvInstaller(ROOT, tmp_path)
    release = releases.FAMILIES["scipy"].release("1.13.1")
    env = tmp_path / installer.key(release)
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").write_text("")
    (env / envs.MARKER).write_text("{}")
    outcome = installer.install(release)
    assert outcome.ok and outcome.reused and outcome.python == str((env / "bin" / "python").resolve())


# --------------------------------------------------------------------------- running a release


class FakeInstaller:
    def __init__(self, broken=()):
        self.broken, self.installed = set(broken), []

    def install(self, release):
        self.installed.append(release.label)
        if release.label in self.broken:
            return Installed(release.label, False, reason="ERROR: No matching distribution found for jaxlib==0.0")
        return Installed(release.label, True, python="/fake/python", seconds=1.5)


def test_default_selection_is_the_familys_apis_without_the_largest_cases():
    optax = releases.FAMILIES["optax"].release("0.2.2")
    argv = Selection().arguments(optax)
    assert argv[argv.index("-k") + 1] == "(optax) and (not large-vocab)"
    scipy = releases.FAMILIES["scipy"].release("1.13.1")
    argv = Selection().arguments(scipy)
    assert argv[argv.index("-k") + 1] == "(not large-vocab)" and argv[argv.index("--framework") + 1] == "scipy"
    assert "-k" not in Selection(keyword="").arguments(scipy)  # '' asks for every check
    assert Selection(dtypes=()).arguments(scipy).count("--dtype") == 0


def test_a_release_that_does_not_install_is_a_summary_entry_not_a_gap(tmp_path, capsys):
    release = releases.FAMILIES["jax"].release("0.4.25")
    outcome = run_release(
        release,
        FakeInstaller({release.label}),
        Selection(),
        tmp_path,
        runner=lambda argv, env: pytest.fail("nothing to run"),
    )
    assert not outcome.installed
    entries = load_summary(tmp_path / "summary.json")
    assert [(e["label"], e["installed"]) for e in entries] == [("jax-0.4.25", False)]
    assert "No matching distribution" in entries[0]["install"]["reason"]
    assert json.loads((tmp_path / "jax-0.4.25" / "release.json").read_text())["installed"] is False


def test_run_passes_the_selection_and_reads_the_results_back(tmp_path):
    release = releases.FAMILIES["scipy"].release("1.13.1")
    seen = {}

    def runner(argv, environ):
        seen.update(argv=argv, cache=environ.get("KLCONF_CACHE_DIR"))
        out = Path(argv[argv.index("--out") + 1])
        write_results(
            out / "results.jsonl",
            [record(case="a", framework="scipy"), record(case="b", verdict="skip", framework="scipy")],
        )
        return 0

    selection = Selection(dtypes=("float64",), keyword="zeros")
    warm = run_release(release, FakeInstaller(), selection, tmp_path, runner=runner)
    argv = seen["argv"]
    assert argv[:4] == ["/fake/python", "-m", "conformance", "run"]
    assert argv[argv.index("--framework") + 1] == "scipy" and argv[argv.index("-k") + 1] == "zeros"
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--check"] == list(release.checks)
    assert warm.counts == {"pass": 1, "skip": 1} and warm.cache == "warm"
    cold = run_release(release, FakeInstaller(), selection, tmp_path, cold=True, runner=runner)
    assert cold.cache == "cold" and seen["cache"] and not Path(seen["cache"]).exists()  # an empty, temporary cache
    assert sorted(e["cache"] for e in load_summary(tmp_path / "summary.json")) == ["cold", "warm"]


# --------------------------------------------------------------------------- bisection


def _rec(check: str, verdict: str = "pass", observed=0.5, inferred: dict | None = None) -> Record:
    r = record(case=check, framework="jax", api="jax.scipy.special.rel_entr", verdict=verdict, observed=observed)
    if inferred is not None:
        r.check, r.extra = "convention", {"inferred": inferred}
    return r


class FakeReleases:
    """n releases; from index `change` on, check `b` returns NaN where it returned a finite value."""

    def __init__(self, n: int, change: int | None, broken=()):
        self.labels = [f"fake-{i}" for i in range(n)]
        self.change, self.broken, self.evaluated = change, set(broken), []

    def __call__(self, label: str) -> bisect.Probe:
        self.evaluated.append(label)
        i = self.labels.index(label)
        if i in self.broken:
            return bisect.Probe(label, None, "no wheels")
        changed = self.change is not None and i >= self.change
        records = [_rec("a", observed=0.5 + i * 1e-9), _rec("b", observed="nan" if changed else 0.25)]
        return bisect.Probe(label, {r.check_id: r for r in records})


@pytest.mark.parametrize("n", [2, 3, 5, 17, 34, 100])
def test_bisection_finds_every_planted_release_within_the_budget(n):
    for change in range(1, n):
        fake = FakeReleases(n, change)
        result = bisect.search(fake.labels, fake)
        assert (result.before, result.after) == (change - 1, change)
        assert [c.split("::")[0] for c in result.changed] == ["b"]
        assert result.installs == len(set(fake.evaluated)) <= bisect.Bisection.budget(n)
        assert bisect.Bisection.budget(n) <= 2 + math.ceil(math.log2(max(n - 1, 1)))


def test_bisection_reports_no_change_and_ignores_moves_within_a_class():
    fake = FakeReleases(17, None)  # check a's value moves a little every release: not a behaviour change
    result = bisect.search(fake.labels, fake)
    assert result.after is None and "no change" in result.note and result.installs == 2


def test_bisection_steps_around_a_release_that_does_not_install():
    fake = FakeReleases(17, 9, broken={8})
    result = bisect.search(fake.labels, fake)
    assert (result.before, result.after) == (7, 9)  # 8 could not be judged: the change lies in 8 or 9
    assert result.installs <= bisect.Bisection.budget(17) + 1


def test_bisection_needs_both_ends():
    fake = FakeReleases(5, 2, broken={0})
    result = bisect.search(fake.labels, fake)
    assert result.after is None and "no wheels" in result.note


def test_signature_sees_verdict_value_class_and_inferred_convention():
    base = _rec("c", observed=[1.0, "inf"])
    assert bisect.signature(base) == bisect.signature(_rec("c", observed=[2.0, "inf"]))
    assert bisect.signature(base) != bisect.signature(_rec("c", observed=[2.0, "-inf"]))
    assert bisect.signature(base) != bisect.signature(_rec("c", verdict="xfail", observed=[1.0, "inf"]))
    summarized = {"shape": [2, 100], "sample": [0.1, "nan"], "at_worst": "inf"}
    assert bisect.value_classes(summarized) == ("finite", "nan", "+inf")
    assert bisect.signature(_rec("v", inferred={"reduction": "sum"})) != bisect.signature(
        _rec("v", inferred={"reduction": "mean"})
    )
    assert bisect.signature(None) == bisect.ABSENT
    assert "1 finite, 1 +inf" in bisect.describe(bisect.signature(base))
    change = bisect.difference(
        bisect.signature(_rec("v", inferred={"reduction": "sum", "axis": -1})),
        bisect.signature(_rec("v", verdict="fail", inferred={"reduction": "mean", "axis": -1})),
    )
    assert change == "verdict pass → fail; inferred reduction 'sum' → 'mean'"
    assert (
        bisect.difference(bisect.signature(base), bisect.signature(_rec("c", observed=[1.0, "nan"])))
        == "value class [1] +inf → nan"
    )
