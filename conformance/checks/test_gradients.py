"""Every differentiable argument of every API: autodiff against the oracle's analytic gradient."""
from conformance.gradients import run_gradient_check


def test_gradient(klconf_gradient_check, klconf_record):
    klconf_record(run_gradient_check(klconf_gradient_check))
