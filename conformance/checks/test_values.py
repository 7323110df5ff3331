"""Every case through every API call: the output against the oracle under the declared convention."""

from conformance.kinds import by_name

KIND = by_name("value")  # its planner and runner: conformance/kinds.py


def test_value(klconf_check, klconf_record):
    klconf_record(KIND.run(klconf_check))
