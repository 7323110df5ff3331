"""Distribution-level KL: every distribution case through every library, device and dtype.

Planned by the plugin (conformance/kinds.py, KINDS) over case x library x device x dtype from its
options: --klconf-cases (the distribution files found under it), --klconf-framework (torch,
tensorflow, jax: the framework whose arrays the library takes), --klconf-device, --klconf-dtype
(float32 and float64 only: no library computes these closed forms in half precision). Each check
becomes a Record with check="distribution" through the plugin's `klconf_record` fixture.
"""

from conformance.kinds import by_name

KIND = by_name("distribution")  # its planner and runner: conformance/kinds.py


def test_distribution(klconf_distribution_check, klconf_record):
    klconf_record(KIND.run(klconf_distribution_check))
