"""Every differentiable argument of every API: autodiff against the oracle's analytic gradient."""

from conformance.kinds import by_name

KIND = by_name("gradient")  # its planner and runner: conformance/kinds.py


def test_gradient(klconf_gradient_check, klconf_record):
    klconf_record(KIND.run(klconf_gradient_check))
