"""Porting: every API call's equivalent in every other framework, composed from its inferred convention
and verified against the call on every tensor-level case (float64 and float32, CPU).

Parametrized here over API x options x target framework from the plugin's own options:
--klconf-framework (the source calls, and the targets, among the selected frameworks; plug-in
APIs are ported to every selected framework), --klconf-api, --klconf-only-plugins,
--klconf-cases, and --klconf-device (ports are verified on the CPU only). Each port becomes a
Record with check="porting" through the plugin's `klconf_record` fixture; a port whose source or
target framework is not installed is a skip with the reason.
"""
import pytest

from conformance.frameworks import FRAMEWORKS
from conformance.plugin import _cases, _selected_apis
from conformance.porting.port import targets_for
from conformance.porting.records import porting_record


def pytest_generate_tests(metafunc):
    if "klconf_port" not in metafunc.fixturenames:
        return
    config = metafunc.config
    devices = config.getoption("klconf_device") or ["cpu"]
    selected = config.getoption("klconf_framework") or list(FRAMEWORKS)
    params = []
    if "cpu" in devices:
        params = [
            pytest.param((api, options, target), id=f"porting-{api.name}({api.option_label(options)})-to-{target}",
                         marks=[getattr(pytest.mark, api.framework), pytest.mark.cpu, pytest.mark.klconf])
            for api in _selected_apis(config) for options in api.options for target in targets_for(api, selected)]
    metafunc.parametrize("klconf_port", params)


def test_porting(klconf_port, klconf_record, request):
    api, options, target = klconf_port
    klconf_record(porting_record(api, options, target, _cases(request.config)))
