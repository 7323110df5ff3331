"""Convention discovery: each API call's conventions inferred from outputs alone, then compared
with what its adapter declares.

Planned by the plugin (conformance/kinds.py, KINDS) over API x options x device from its options
(--klconf-framework, --klconf-api, --klconf-only-plugins, --klconf-device); the inference covers
the dtypes itself. A disagreement is a failed record of kind "convention" whose `extra` holds the
inferred and declared fields, the evidence and the disagreeing fields.
"""

from conformance.kinds import by_name

KIND = by_name("convention")  # its planner and runner: conformance/kinds.py


def test_convention(klconf_convention_check, klconf_record):
    klconf_record(KIND.run(klconf_convention_check))
