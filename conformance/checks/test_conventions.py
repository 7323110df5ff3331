"""Convention discovery: each API call's conventions inferred from outputs alone, then compared
with what its adapter declares.

Parametrized here over API x options x device from the plugin's own options
(--klconf-framework, --klconf-api, --klconf-only-plugins, --klconf-device); the inference
covers the dtypes itself. A disagreement is a failed record of kind "convention" whose
`extra` holds the inferred and declared fields, the evidence and the disagreeing fields.
"""
import pytest

from conformance.frameworks import DEVICES
from conformance.inference.records import convention_record
from conformance.plugin import _selected_apis


def pytest_generate_tests(metafunc):
    if "klconf_convention" not in metafunc.fixturenames:
        return
    devices = metafunc.config.getoption("klconf_device") or DEVICES
    params = [
        pytest.param((api, options, device), id=f"conventions-{api.name}({api.option_label(options)})-{device}",
                     marks=[getattr(pytest.mark, api.framework), getattr(pytest.mark, device), pytest.mark.klconf])
        for api in _selected_apis(metafunc.config) for options in api.options for device in devices]
    metafunc.parametrize("klconf_convention", params)


def test_convention(klconf_convention, klconf_record):
    api, options, device = klconf_convention
    klconf_record(convention_record(api, options, device))
