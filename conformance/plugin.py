"""The pytest plugin: options, markers, parametrization, and the hooks that carry records.

Parametrization is case x API x options x device x dtype, with one marker per
framework, device and dtype, so `-m "torch and float16"` or `-k kl_div` select
naturally. What a run selects is planned in `selection.py`; records travel from the process
that ran a check to the one that writes the results file (`results_file.py`) through
`report.user_properties`, so the file is written by one process (the pytest-xdist
controller, or pytest itself) one line per completed check.
"""

from __future__ import annotations

import pytest

from . import frameworks, isolation, kinds, protocol, sharding
from .dtypes import DTYPES
from .results import Record
from .results_file import ResultsFile
from .selection import corpus_hash, node_id, selected_checks

KINDS = kinds.KINDS  # the registry of kinds of check (conformance/kinds.py), also readable here
MARKERS = {
    **{fw: f"checks of {fw} APIs" for fw in frameworks.KNOWN},
    **{d: f"checks on the {d} device" for d in frameworks.DEVICES},
    **{d: f"checks in {d}" for d in DTYPES},
}


def pytest_addoption(parser):
    group = parser.getgroup("klconf", "klconf conformance checks")
    group.addoption("--klconf-cases", default=None, help="case file or directory (default: the bundled cases/)")
    group.addoption(
        "--klconf-framework",
        action="append",
        default=[],
        metavar="NAME",
        help=f"only these frameworks ({', '.join(frameworks.FRAMEWORKS)}); repeatable",
    )
    group.addoption(
        "--klconf-api",
        action="append",
        default=[],
        metavar="MODULE:OBJECT",
        help="also check the Api entries this names (a third-party implementation); repeatable",
    )
    group.addoption(
        "--klconf-only-plugins",
        action="store_true",
        help="check only the --klconf-api entries, not the built-in frameworks",
    )
    group.addoption(
        "--klconf-device",
        action="append",
        default=[],
        choices=frameworks.DEVICES,
        help="only these devices (default: all; a device a framework lacks is a skip)",
    )
    group.addoption("--klconf-dtype", action="append", default=[], choices=DTYPES, help="only these dtypes")
    group.addoption("--klconf-results", default=None, metavar="PATH", help="write JSON-lines results here")
    group.addoption(
        "--klconf-timeout",
        type=float,
        default=isolation.DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="time limit for one framework call (0: none); a hang becomes a `timeout` record",
    )
    group.addoption(
        "--klconf-expectations",
        default=None,
        metavar="DIR",
        help="expectations manifests (default: cases/expectations; 'none' to report raw verdicts)",
    )
    sharding.add_options(group)


def pytest_configure(config):
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")
    config.addinivalue_line("markers", "klconf: a klconf conformance check")
    path = config.getoption("klconf_results", None)
    is_worker = hasattr(config, "workerinput")
    sharding.configure(config)
    isolation.configure(
        config.getoption("klconf_timeout", None), isolation.hung_marker(path) if path else None, hard=is_worker
    )
    isolation.install_interrupt_handlers()  # the user's Ctrl-C or SIGTERM ends the run, an API's KeyboardInterrupt not
    if path:  # a run of klconf's checks (not another project's tests with the plugin installed)
        _no_final_collections(config)
    if path and not is_worker:  # the xdist controller, or plain pytest, writes
        config.pluginmanager.register(ResultsFile(path, corpus_hash(config), config), "klconf-results")


def _no_final_collections(config) -> None:
    """pytest ends a run with two full garbage collections, to flush exceptions raised in finalizers into its
    warnings (`_pytest.unraisableexception`); in a process that holds three frameworks' heaps they took about
    3 s of a one-process run over the corpus, and each worker of `klconf run -n` pays them at its end. The
    knob is the one pytest's own pytester sets: exceptions from finalizers that ran are still collected and
    shown; those of objects left in reference cycles are printed when the process exits. A user who asks for
    collections (the stash key set) keeps them."""
    try:
        from _pytest.unraisableexception import gc_collect_iterations_key
    except ImportError:  # a pytest without the knob collects as it always has
        return
    config.stash.setdefault(gc_collect_iterations_key, 0)


def pytest_generate_tests(metafunc):
    kind = kinds.by_fixture(metafunc.fixturenames)
    if kind is None:
        return
    params = []
    marks: dict[tuple, tuple] = {}  # one tuple per framework, device and dtype (pytest.mark's lookup is not free)
    for c in selected_checks(metafunc.config, kind.fixture):
        key = (kinds.framework_of(c), c.device, c.dtype if c.dtype in DTYPES else None)
        if key not in marks:
            marks[key] = (*(getattr(pytest.mark, name) for name in key if name), pytest.mark.klconf)
        params.append(pytest.param(c, id=node_id(c), marks=marks[key]))
    metafunc.parametrize(kind.fixture, params)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
    """A kind with no check in this selection (gradients of SciPy alone) is parametrized with nothing, which
    pytest turns into one placeholder item; it is no check, so it is neither planned, run nor recorded."""
    placeholders = [item for item in items if _is_placeholder(item)]
    if placeholders:
        config.hook.pytest_deselected(items=placeholders)
        items[:] = [item for item in items if not _is_placeholder(item)]


def _is_placeholder(item) -> bool:
    params = getattr(getattr(item, "callspec", None), "params", {})
    kind = kinds.by_fixture(params)
    return kind is not None and not hasattr(params[kind.fixture], "id")


RUNNING_ITEM = pytest.StashKey[pytest.Item]()  # in config.stash: the item this process is running


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """A klconf check runs without pytest's per-phase machinery (conformance/protocol.py); other items,
    and runs that show fixtures or step into a debugger, take pytest's own protocol."""
    found = protocol.check_of(item)
    if found is None or not protocol.runs_lean(item.config):
        return None
    following = protocol.check_of(nextitem) if nextitem is not None else None
    protocol.run_check_item(item, *found, upcoming=following[1] if following else None)
    return True


def pytest_runtest_setup(item):
    item.config.stash[RUNNING_ITEM] = item
    isolation.running(item.nodeid)


@pytest.fixture(scope="session")
def klconf_record(request):
    """Call with a Record: it goes to the results file (with the running item's report) and decides the
    test's outcome, under pytest's standard protocol (`pytest_runtest_protocol` above runs the check
    itself otherwise). Session-scoped, so a run's tens of thousands of items do not each set up a fixture
    and the `request` it depends on; the record goes to the item `pytest_runtest_setup` last stashed,
    the one whose test is calling."""

    config = request.config

    def record(rec: Record) -> None:
        outcome(protocol.keep_record(config, config.stash[RUNNING_ITEM], rec))

    return record


def outcome(rec: Record) -> None:
    """The test's outcome, as pytest's exceptions, from the record's verdict (protocol.verdict_outcome)."""
    result, text = protocol.verdict_outcome(rec)
    if result == "skipped":
        pytest.skip(text)
    if result == "xfailed":
        # pytest.xfail() would have pytest render the call stack with its source (about 40 ms a check, a
        # minute of a main job's 3,000 known failures); the record holds all there is to say
        raise pytest.xfail.Exception(text, pytrace=False)
    if result == "failed":
        pytest.fail(text, pytrace=False)
