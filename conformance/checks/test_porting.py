"""Porting: every API call's equivalent in every other framework, composed from its inferred convention
and verified against the call on every tensor-level case (float64 and float32, CPU).

Planned by the plugin (conformance/kinds.py, KINDS) over API x options x target framework from its
options: --klconf-framework (the source calls, and the targets, among the selected frameworks; plug-in
APIs are ported to every selected framework), --klconf-api, --klconf-only-plugins, --klconf-cases, and
--klconf-device (ports are verified on the CPU only). Each port becomes a Record with check="porting"
through the plugin's `klconf_record` fixture; a port whose source or target framework is not installed
is a skip with the reason.
"""

from conformance.kinds import by_name

KIND = by_name("porting")  # its planner and runner: conformance/kinds.py


def test_porting(klconf_porting_check, klconf_record):
    klconf_record(KIND.run(klconf_porting_check))
