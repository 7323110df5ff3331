"""The properties each case lists (KL(P||P) = 0, non-negativity, ...), for every API."""

from conformance.kinds import by_name

KIND = by_name("property")  # its planner and runner: conformance/kinds.py


def test_property(klconf_property_check, klconf_record):
    klconf_record(KIND.run(klconf_property_check))
