"""Every planted fault (tests/faulty.py) in a real `klconf run`: one record each, the right verdict, a message
that names the cause, the run completes, and the terminal summary, the results file and the report agree
with each other and with the plan."""

import importlib.util
import re
from types import SimpleNamespace

import pytest

from conformance import results
from conformance.distributions import libraries
from conformance.distributions import runner as distribution_runner
from conformance.distributions.families import Constructor
from conformance.report import aggregate, model
from tests import faulty
from tests.test_reliability import klconf

# Every kind of BaseException also goes through the convention and porting checks (scipy: the cheapest target).
# There an Exception is a probe the API refuses (evidence: the inference fails), any other BaseException is the
# check's error.
RAISING = [f.api.name for f in faulty.BASE_EXCEPTIONS]
NOT_EXCEPTIONS = (
    "faulty.keyboard_interrupt",
    "faulty.sys_exit",
    "faulty.generator_exit",
    "faulty.custom_base_exception",
)
SELECTION = " or ".join(
    ["canonical-2x3"] + [f"conventions-{n}" for n in RAISING] + [f"porting-to-scipy-{n}" for n in RAISING]
)


def _run(tmp_path, *args):
    proc = klconf("run", "--only-api", "--out", str(tmp_path), "--dtype", "float64", "--device", "cpu", *args)
    out, _ = proc.communicate(timeout=600)
    return proc.returncode, out, results.read(tmp_path / "results.jsonl")


def _agree(out: str, run: results.Results, tmp_path) -> None:
    """Records equal planned checks; the summary line, the footer and the report count the same."""
    assert run.problems == [] and run.complete and not run.end["interrupted"]
    assert run.end["complete"] and run.end["not_run"] == []
    assert len(run.records) == run.end["planned"] == len({r.check_id for r in run.records})
    counts = {v: n for v, n in run.counts().items() if n}
    assert run.end["counts"] == counts
    line = re.search(r"(\d+) checks of (\d+) planned: (.*)", out)
    assert line, out[-3000:]
    assert int(line.group(1)) == int(line.group(2)) == len(run.records)
    assert dict((v, int(n)) for n, v in (part.split(" ") for part in line.group(3).split(", "))) == counts
    summary = aggregate.build(model.load([tmp_path / "results.jsonl"]))["summary"]
    assert summary["total"]["total"] == len(run.records)
    shown = dict(zip(summary["verdicts"], summary["total"]["counts"]))
    assert shown == {v: counts.get(v, 0) for v in summary["verdicts"]}
    if (tmp_path / "index.html").exists():
        assert f"{len(run.records)} checks from 1 results file" in (tmp_path / "index.html").read_text()


def _holds(fault: faulty.Fault, record) -> str:
    """'' when the record is what the fault must give, else what is wrong."""
    if (record.verdict, record.kind) != (fault.verdict, fault.kind):
        return (
            f"{record.check_id}: {record.verdict}/{record.kind}, expected {fault.verdict}/{fault.kind}: "
            f"{record.message}"
        )
    if fault.says.lower() not in record.message.lower():
        return f"{record.check_id}: message {record.message[:300]!r} does not say {fault.says!r}"
    return ""


def test_every_numpy_fault_is_one_record_with_its_verdict_and_cause(tmp_path):
    code, out, run = _run(
        tmp_path,
        "--api",
        "tests.faulty:NUMPY_APIS",
        "-k",
        SELECTION,
        "-n",
        "2",
        "--check",
        "value",
        "--check",
        "property",
        "--check",
        "convention",
        "--check",
        "porting",
    )
    assert code == 1, out[-3000:]
    _agree(out, run, tmp_path)
    by_api = {}
    for r in run.records:
        by_api.setdefault(r.api, []).append(r)
    assert set(by_api) == {f.api.name for f in faulty.NUMPY_FAULTS}
    wrong = []
    for fault in faulty.NUMPY_FAULTS:
        kinds = {r.check for r in by_api[fault.api.name]}
        expected_kinds = {"value", "property"} | ({"convention", "porting"} if fault.api.name in RAISING else set())
        assert kinds == expected_kinds, (fault.api.name, kinds)
        for r in by_api[fault.api.name]:
            if r.check in ("convention", "porting"):
                verdict, kind = ("error", "exception") if fault.api.name in NOT_EXCEPTIONS else ("fail", r.check)
                wrong.append(_holds(faulty.Fault(fault.api, verdict, kind, fault.says), r))
            else:
                wrong.append(_holds(fault, r))
    assert "\n".join(w for w in wrong if w) == ""
    assert len(faulty.NUMPY_FAULTS) + len(faulty.FRAMEWORK_STATE) - 4 >= 25  # kinds of fault planted (less probes)


@pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("torch", "jax", "tensorflow")),
    reason="needs torch, JAX and TensorFlow",
)
def test_framework_state_an_api_changes_is_named_and_restored(tmp_path):
    code, out, run = _run(
        tmp_path,
        "--api",
        "tests.faulty:FRAMEWORK_APIS",
        "-k",
        "canonical-2x3",
        "-n",
        "0",
        "--check",
        "value",
        "--check",
        "gradient",
        "--no-report",
    )
    _agree(out, run, tmp_path)
    values = {r.api: r for r in run.records if r.check == "value"}
    assert [w for w in (_holds(f, values[f.api.name]) for f in faulty.FRAMEWORK_STATE) if w] == []
    gradient = next(r for r in run.records if r.check == "gradient")  # its backward raises KeyboardInterrupt
    assert (gradient.verdict, gradient.kind) == ("error", "exception")
    assert gradient.message == "KeyboardInterrupt: raised in backward" and "backward" in gradient.extra["traceback"]
    assert code == 1  # the gradient's error; the run itself was not interrupted


def _library(name, kl):
    """A NumPy distribution library whose KL is `kl` (see tests/test_distributions_runner.py)."""

    class Normal:
        def __init__(self, loc, scale):
            self.loc, self.scale = loc, scale

    handle = SimpleNamespace(
        dist=SimpleNamespace(Normal=Normal),
        kl=kl,
        lookup=lambda a, b: kl,
        registry=lambda: {(Normal, Normal): kl},
        diag_embed=None,
    )
    return libraries.Library(
        name=name,
        key="fake",
        framework="numpy",
        modules=("numpy",),
        load=lambda: handle,
        versions=lambda h: {"fake": "1.0"},
        constructors={"normal": Constructor("Normal", {"loc": "loc", "scale": "scale"})},
    )


def _normal_kl(p, q):
    import numpy as np

    var = (p.scale / q.scale) ** 2
    return 0.5 * (var + ((p.loc - q.loc) / q.scale) ** 2 - 1 - np.log(var))


def _raise(exc):
    def kl(p, q):
        raise exc

    return kl


@pytest.mark.parametrize(
    "kl, verdict, kind, says",
    [
        (_raise(KeyboardInterrupt("from the library")), "error", "exception", "KeyboardInterrupt: from the library"),
        (_raise(SystemExit(2)), "error", "exception", "SystemExit: 2"),
        (_raise(faulty.FaultyBaseException("odd")), "error", "exception", "FaultyBaseException: odd"),
        (lambda p, q: _normal_kl(p, q) + 0j, "fail", "complex", "out.dtype=complex128"),
        (lambda p, q: (_normal_kl(p, q) * 100).astype("int64"), "fail", "integer", "out.dtype=int64"),
    ],
)
def test_distribution_checks_have_the_same_guard(tmp_path, kl, verdict, kind, says):
    from conformance.distributions.cases import load_cases

    path = tmp_path / "normal.yaml"
    path.write_text(
        "distribution_cases:\n  - id: normal\n    description: two normals\n"
        "    p: {family: normal, loc: [0.0, 1.5], scale: [1.0, 0.5]}\n"
        "    q: {family: normal, loc: 0.5, scale: [2.0, 0.5]}\n"
    )
    (case,) = load_cases(path)
    library = _library(f"fake.lib.{id(kl)}", kl)  # (libraries are loaded once per name)
    rec = distribution_runner.run_check(distribution_runner.DistributionCheck(case, library, "cpu", "float64"))
    assert (rec.verdict, rec.kind) == (verdict, kind) and says in rec.message, rec.message


class _Config:
    """Just what the plugin's planners read from a pytest config."""

    def __init__(self, **options):
        self.options = {
            "klconf_cases": None,
            "klconf_framework": [],
            "klconf_api": [],
            "klconf_only_plugins": False,
            "klconf_device": ["cpu"],
            "klconf_dtype": ["float64"],
            "klconf_expectations": "none",
            "klconf_timeout": 2.0,
            **options,
        }

    def getoption(self, name, default=None):
        return self.options.get(name, default)


def test_every_kind_of_check_is_planned_attributed_and_recorded_by_one_path(tmp_path):
    """For each kind: the node id of a planned check leads back to it, and the record a crash of its process
    gets is its own identity (check kind, id, case) -- as the record a run of it starts from."""
    from conformance import plugin, selection

    config = _Config()
    writer = plugin.ResultsFile(str(tmp_path / "results.jsonl"), "", config)
    nodeids = []
    for kind in plugin.KINDS:
        checks = plugin.selected_checks(config, kind.fixture)
        assert checks, kind.name
        check = checks[-1]
        nodeid = f"conformance/checks/x.py::{kind.test}[{selection.node_id(check)}]"
        assert writer._check_of(nodeid) is check
        crashed = writer._planned_record(nodeid, "crash", "worker 'gw0' crashed while running it")
        assert (crashed["check"], crashed["check_id"], crashed["verdict"], crashed["kind"]) == (
            kind.name,
            check.id,
            "crash",
            "crash",
        )
        assert results.schema_errors(crashed) == []
        start = check.record()
        assert (start.check, start.check_id, start.case_id, start.api) == (
            kind.name,
            crashed["check_id"],
            crashed["case_id"],
            crashed["api"],
        )
        nodeids.append(nodeid)
    # a test that ends without its record, a dead worker, and four checks that never ran
    writer.pytest_collection_finish(SimpleNamespace(items=[SimpleNamespace(nodeid=n) for n in nodeids]))
    report = dict(
        user_properties=[], longrepr="AssertionError: boom", outcome="failed", skipped=False, failed=True, passed=False
    )
    writer.pytest_runtest_logreport(SimpleNamespace(nodeid=nodeids[0], when="call", **report))
    writer.pytest_runtest_logreport(SimpleNamespace(nodeid=nodeids[1], when="???", **report))
    writer.pytest_runtest_logreport(SimpleNamespace(nodeid=nodeids[1], when="teardown", **report))
    writer.pytest_sessionfinish(None, 1)
    run = results.read(tmp_path / "results.jsonl", validate="all")
    assert run.problems == [] and [(r.check, r.verdict, r.kind) for r in run.records] == [
        (plugin.KINDS[0].name, "error", "internal"),
        (plugin.KINDS[1].name, "crash", "crash"),
    ]
    assert "ended without a record (call): AssertionError: boom" in run.records[0].message
    assert run.end["planned"] == 6 and not run.end["complete"] and not run.end["interrupted"]
    assert run.end["not_run"] == [writer._check_of(n).id for n in nodeids[2:]]
