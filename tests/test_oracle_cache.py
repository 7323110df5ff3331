"""The oracle's disk cache: what a later run or another worker reads back is what was computed, and a
damaged, locked or hostile cache is only a miss."""

from __future__ import annotations

import json
import os
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conformance import oracle
from conformance.oracle import cache
from conformance.oracle import derivatives as derivatives_module

ROOT = Path(__file__).resolve().parents[1]
SMALL = (np.array([[0.25, 0.75], [0.5, 0.5]]), np.array([[0.5, 0.5], [0.9, 0.1]]))
LARGE = tuple(np.random.default_rng(7).dirichlet(np.ones(300), size=2) for _ in range(2))  # 600 elements


@pytest.fixture
def disk(tmp_path, monkeypatch):
    """A cache folder of its own, and an oracle whose memory starts empty."""
    monkeypatch.setenv("KLCONF_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(oracle, "_RESULTS", cache.Results(oracle.Expectation))
    monkeypatch.setattr(derivatives_module, "_RESULTS", oracle._RESULTS)
    _empty_memory(monkeypatch)
    return tmp_path


def _empty_memory(monkeypatch):
    monkeypatch.setattr(oracle, "_TERMS", oracle._Recent(oracle._TERMS.limit))
    monkeypatch.setattr(oracle, "_SIDES", oracle._Recent(oracle._SIDES.limit))
    monkeypatch.setattr(oracle, "_GRADIENTS", oracle._Recent(oracle._GRADIENTS.limit))


def _forget(monkeypatch):
    """A new process's view: empty memory, the same folder; computing again would fail the test."""
    monkeypatch.setattr(oracle, "_RESULTS", cache.Results(oracle.Expectation))
    monkeypatch.setattr(derivatives_module, "_RESULTS", oracle._RESULTS)
    _empty_memory(monkeypatch)

    def computed_again(*args, **kwargs):
        raise AssertionError("a cached result was computed again")

    monkeypatch.setattr(oracle, "_compute_terms", computed_again)
    monkeypatch.setattr(oracle.kl, "side", computed_again)  # a gradient, too, starts from the sides
    monkeypatch.setattr(oracle.kl, "gradient", computed_again)


def _same(a, b) -> None:
    for name in ("value", "magnitude", "terms", "log_scale", "low", "bound", "provenance"):
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, str) or isinstance(x, int):
            assert x == y and type(x) is type(y), name
        else:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=name)
            assert np.shape(x) == np.shape(y), name


@pytest.mark.parametrize("inputs", [SMALL, LARGE], ids=["small-row", "large-file"])
@pytest.mark.parametrize("reduction", ["none", "per_row", "sum"])
def test_a_later_process_reads_back_exactly_what_was_computed(disk, monkeypatch, inputs, reduction):
    spec = oracle.Spec(reduction=reduction)
    value = oracle.expected(*inputs, spec)
    gradient = oracle.gradient(*inputs, oracle.Spec(reduction=reduction), "q")
    assert bool(list(disk.glob("*.npz"))) == (inputs is LARGE)  # a small result is a row of the store
    _forget(monkeypatch)
    _same(oracle.expected(*inputs, spec), value)
    again = oracle.gradient(*inputs, oracle.Spec(reduction=reduction), "q")
    np.testing.assert_array_equal(again.value, gradient.value)
    np.testing.assert_array_equal(again.bound, gradient.bound)


def test_small_results_are_rows_of_one_file_not_files_of_their_own(disk):
    for shift in range(20):
        oracle.expected(SMALL[0], np.roll(SMALL[1], shift % 2, axis=-1) * (1 + shift) / (1 + shift), oracle.Spec())
        oracle.expected(SMALL[0] * 0 + 0.5, SMALL[1] / SMALL[1].sum(-1, keepdims=True), oracle.Spec(reduction="sum"))
        oracle.expected(np.full((1, 2), 0.5), np.array([[shift + 1.0, 1.0]]) / (shift + 2), oracle.Spec())
    assert not list(disk.glob("*.npz"))
    with sqlite3.connect(disk / cache.SMALL_STORE) as con:
        assert con.execute("SELECT count(*) FROM results").fetchone()[0] >= 20


def test_a_damaged_store_is_a_miss_and_the_value_is_computed(disk, monkeypatch):
    right = oracle.expected(*SMALL, oracle.Spec())
    monkeypatch.setattr(oracle, "_RESULTS", cache.Results(oracle.Expectation))
    (disk / cache.SMALL_STORE).write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (disk / (cache.SMALL_STORE + suffix)).unlink(missing_ok=True)
    _same(oracle.expected(*SMALL, oracle.Spec()), right)


def test_a_damaged_row_is_a_miss(disk, monkeypatch):
    right = oracle.expected(*SMALL, oracle.Spec())
    with sqlite3.connect(disk / cache.SMALL_STORE) as con:
        con.execute("UPDATE results SET data = substr(data, 1, length(data) - 5)")
    monkeypatch.setattr(oracle, "_RESULTS", cache.Results(oracle.Expectation))
    _same(oracle.expected(*SMALL, oracle.Spec()), right)


def test_an_unwritable_folder_only_costs_time(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("KLCONF_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setattr(oracle, "_RESULTS", cache.Results(oracle.Expectation))
    _empty_memory(monkeypatch)
    value = oracle.expected(*SMALL, oracle.Spec()).value
    np.testing.assert_allclose(value, [0.1308120, 0.5108256], rtol=1e-6)


def test_rows_hold_no_pickle_and_refuse_object_arrays():
    assert cache.unpack(cache.pack({"x": np.arange(3.0)}))["x"].tolist() == [0.0, 1.0, 2.0]
    header = json.dumps([["x", "|O", [1]]]).encode()
    assert cache.unpack(struct.pack("<I", len(header)) + header + b"\0" * 8) is None
    for damaged in (b"", b"\xff\xff\xff\xff", cache.pack({"x": np.arange(3.0)})[:-1]):
        assert cache.unpack(damaged) is None
    store = cache.Results(oracle.Expectation)
    with_none = oracle.Expectation(np.zeros(2), np.zeros(2), 1, bound=None)
    store.put("key", with_none, 2)  # kept in memory, never written with pickle
    assert store.get("key") is with_none


def test_workers_writing_at_once_lose_nothing(tmp_path):
    """pytest-xdist workers share the store: rows written at the same moment are all there afterwards."""
    script = (
        "import sys, numpy as np\n"
        "from conformance.oracle import cache\n"
        "from pathlib import Path\n"
        "store = cache._SmallStore()\n"
        "for i in range(300):\n"
        "    store.put(Path(sys.argv[1]), f'{sys.argv[2]}-{i}', {'v': np.full(3, float(i))})\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path), name], cwd=str(ROOT)) for name in ("a", "b", "c")
    ]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    store = cache._SmallStore()
    for name in ("a", "b", "c"):
        for i in (0, 150, 299):
            got = store.get(tmp_path, f"{name}-{i}")
            assert got is not None and got["v"].tolist() == [float(i)] * 3


FORK = """
import os, sys
from pathlib import Path
import numpy as np
from conformance.oracle import cache
folder = Path(sys.argv[1])
store = cache._SmallStore()
store.put(folder, "parent", {"v": np.arange(2.0)})
inherited = store._connection
pid = os.fork()
if pid == 0:  # the child: a row of its own, through a connection of its own
    ok = False
    try:
        store.put(folder, "child", {"v": np.arange(3.0)})
        ok = store._connection is not inherited and any(c is inherited for c in cache._INHERITED)
        ok = ok and store.get(folder, "parent") is not None
    finally:
        os._exit(0 if ok else 1)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, "the child"
assert store._connection is inherited  # the parent's connection, still open and in use
assert store.get(folder, "child")["v"].tolist() == [0.0, 1.0, 2.0]
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_process_opens_its_own_connection_and_leaves_the_parents_alone(tmp_path):
    """klconf conventions forks its workers: a child must neither use nor close the connection it inherits
    (closing may checkpoint and remove the write-ahead log the parent is using). Forked from a fresh
    interpreter, not from this one, whose frameworks' threads make a fork unsafe."""
    proc = subprocess.run([sys.executable, "-c", FORK, str(tmp_path)], cwd=str(ROOT), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_recent_intermediates_keep_what_was_used_last_within_their_element_budget():
    """The sides and terms a case's checks share: least recently used go first, never more than the limit."""
    recent = oracle._Recent(10)
    recent.put("a", "A", 4)
    recent.put("b", "B", 4)
    assert recent.get("a") == "A"  # now b is the least recently used
    recent.put("c", "C", 4)  # 12 > 10: b goes, a (just read) stays
    assert (recent.get("a"), recent.get("b"), recent.get("c")) == ("A", None, "C")
    recent.put("c", "C2", 6)  # a key put again replaces its value and its count
    assert (recent.get("a"), recent.get("c")) == ("A", "C2")
    recent.put("d", "D", 11)  # larger than the limit: held alone until the next put
    assert (recent.get("a"), recent.get("c"), recent.get("d")) == (None, None, "D")
    recent.put("e", "E", 1)
    assert (recent.get("d"), recent.get("e")) == (None, "E")


def test_a_gradient_is_derived_once_for_every_api_that_asks_for_it(monkeypatch):
    """Every API of one convention asks for the same gradient of the same fed values: it is derived once and
    shared read-only; another spec, argument or weights is another gradient."""
    monkeypatch.setattr(oracle, "_GRADIENTS", oracle._Recent(oracle._GRADIENTS.limit))
    derived = []
    real = derivatives_module.analytic
    monkeypatch.setattr(derivatives_module, "analytic", lambda *a: derived.append(a[2:4]) or real(*a))
    spec = oracle.Spec(reduction="mean_batch")
    first = oracle.gradient(*SMALL, spec, "q")
    again = oracle.gradient(SMALL[0].copy(), SMALL[1].copy(), spec, "q")  # equal values, other arrays
    assert again is first and len(derived) == 1
    with pytest.raises(ValueError):
        first.value[0, 0] = 0.0  # shared: no caller may change it for the next
    weights = np.array([0.5, 1.0])
    others = [
        oracle.gradient(*SMALL, oracle.Spec(reduction="sum"), "q"),
        oracle.gradient(*SMALL, spec, "p"),
        oracle.gradient(*SMALL, spec, "q", weights),
        oracle.gradient(*SMALL, spec, "q", weights * 2),
    ]
    assert len(derived) == 5
    assert not np.array_equal(others[2].value, others[3].value)
    assert oracle.gradient(*SMALL, spec, "q", weights) is others[2] and len(derived) == 5


def test_a_kept_gradient_refines_from_the_values_it_was_asked_for(monkeypatch):
    """A caller that changes its arrays after asking changes nothing for the next caller of the kept gradient:
    its refinement in arb starts from the values it was derived from."""
    monkeypatch.setattr(oracle, "_GRADIENTS", oracle._Recent(oracle._GRADIENTS.limit))
    spec = oracle.Spec(reduction="sum")
    p, q = SMALL[0].copy(), SMALL[1].copy()
    kept = oracle.gradient(p, q, spec, "q")
    need = np.full(p.shape, 1e-30)
    right = kept.expectation().certified_to(need).value
    q[:] = 0.5  # the first caller reuses its buffer
    again = oracle.gradient(*SMALL, spec, "q")
    assert again is kept
    np.testing.assert_array_equal(again.expectation().certified_to(need).value, right)
    assert not np.array_equal(right, oracle.gradient(p, q, spec, "q").value)


def test_a_kept_gradient_is_not_changed_through_a_read_only_view(monkeypatch):
    """A read-only view of a buffer its caller still writes is no promise: the gradient keeps its own copy."""
    monkeypatch.setattr(oracle, "_GRADIENTS", oracle._Recent(oracle._GRADIENTS.limit))
    spec = oracle.Spec(reduction="sum")
    buffer = SMALL[1].copy()
    view = buffer.view()
    view.setflags(write=False)
    kept = oracle.gradient(SMALL[0], view, spec, "q")
    need = np.full(buffer.shape, 1e-30)
    right = kept.expectation().certified_to(need).value
    buffer[:] = 0.5
    again = oracle.gradient(*SMALL, spec, "q")
    assert again is kept
    np.testing.assert_array_equal(again.expectation().certified_to(need).value, right)
