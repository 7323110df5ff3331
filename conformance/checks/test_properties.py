"""The properties each case lists (KL(P||P) = 0, non-negativity, ...), for every API."""
from conformance.properties import run_property_check


def test_property(klconf_property_check, klconf_record):
    klconf_record(run_property_check(klconf_property_check))
