"""The guard around one API call: a shorter limit for calls that should be quick, never a longer one, and
the limit the watchdog ended a call under is what the controller reports."""

import time

import pytest

from conformance import isolation


@pytest.fixture
def run_limit():
    def configure(seconds):
        isolation.configure(seconds, None, hard=False)

    yield configure
    isolation.configure(isolation.DEFAULT_TIMEOUT, None, hard=False)


def _sleeps(seconds: float, limit: float | None) -> str:
    started = time.monotonic()
    try:
        with isolation.ApiCall(limit=limit):
            time.sleep(seconds)
    except isolation.CheckTimeout as exc:
        assert time.monotonic() - started < seconds
        return str(exc)
    return ""


def test_a_call_limit_shorter_than_the_run_s_ends_the_call_at_it(run_limit):
    run_limit(60.0)
    assert _sleeps(5.0, limit=0.2) == "the call did not return within 0.2 s"


def test_a_call_limit_never_lengthens_the_run_s_or_sets_one_where_the_run_has_none(run_limit):
    run_limit(0.2)
    assert _sleeps(5.0, limit=30.0) == "the call did not return within 0.2 s"
    run_limit(None)
    assert _sleeps(0.3, limit=0.1) == ""  # no limit: the user turned limits off


def test_the_limit_a_hung_item_ran_under_is_read_back(tmp_path):
    marker = tmp_path / "results.jsonl.hung"
    marker.write_text("a::test[x]\t30\nb::test[y]\t120\nold-format-line\n", encoding="utf-8")
    assert isolation.hung_items(marker) == {"a::test[x]": 30.0, "b::test[y]": 120.0, "old-format-line": 0.0}
    assert isolation.hung_items(tmp_path / "none.hung") == {}
