"""Every case through every API call: the output against the oracle under the declared convention."""
from conformance.runner import run_check


def test_value(klconf_check, klconf_record):
    klconf_record(run_check(klconf_check))
