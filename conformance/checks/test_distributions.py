"""Distribution-level KL: every distribution case through every library, device and dtype.

Planned by the plugin (conformance/plugin.py, KINDS) over case x library x device x dtype from its
options: --klconf-cases (the distribution files found under it), --klconf-framework (torch,
tensorflow, jax: the framework whose arrays the library takes), --klconf-device, --klconf-dtype
(float32 and float64 only: no library computes these closed forms in half precision). Each check
becomes a Record with check="distribution" through the plugin's `klconf_record` fixture.
"""
from conformance.distributions.runner import run_check


def test_distribution(klconf_distribution_check, klconf_record):
    klconf_record(run_check(klconf_distribution_check))
