"""Distribution-level KL: every distribution case through every library, device and dtype.

Parametrized here (not by the plugin, which parametrizes the tensor-level `klconf_check`)
over case x library x device x dtype, from the plugin's own options: --klconf-cases (the
distribution files found under it), --klconf-framework (torch, tensorflow, jax: the
framework whose arrays the library takes), --klconf-device, --klconf-dtype (float32 and
float64 only: no library computes these closed forms in half precision). Each check becomes
a Record with check="distribution" through the plugin's `klconf_record` fixture.
"""
import pytest

from conformance.cases import CaseFileError
from conformance.distributions import cases as distribution_cases
from conformance.distributions import libraries
from conformance.distributions.runner import DTYPES, plan, run_check
from conformance.frameworks import DEVICES, FRAMEWORKS


def pytest_generate_tests(metafunc):
    if "klconf_distribution_check" not in metafunc.fixturenames:
        return
    config = metafunc.config
    try:
        cases = distribution_cases.load_cases(config.getoption("klconf_cases"))
    except CaseFileError as exc:
        raise pytest.UsageError(f"invalid distribution case files:\n{exc}") from None
    frameworks = config.getoption("klconf_framework") or list(FRAMEWORKS)
    checks = plan(cases, libraries.by_framework(frameworks), devices=config.getoption("klconf_device") or DEVICES,
                  dtypes=config.getoption("klconf_dtype") or DTYPES)
    metafunc.parametrize("klconf_distribution_check", [
        pytest.param(c, id=f"{c.case.id}-{c.library.name}-{c.device}-{c.dtype}",
                     marks=[getattr(pytest.mark, c.library.framework), getattr(pytest.mark, c.device),
                            getattr(pytest.mark, c.dtype), pytest.mark.klconf])
        for c in checks])


def test_distribution(klconf_distribution_check, klconf_record):
    klconf_record(run_check(klconf_distribution_check))
