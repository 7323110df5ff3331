"""A planted regression for the diff tests: fakes.EXACT under its own name, but returning KL x 1.001
for reduction="sum" only, so a diff against a clean run must name exactly those checks."""

from __future__ import annotations

import dataclasses

from tests import fakes

PLANTED_OPTIONS = {"reduction": "sum"}


def _planted(fw, a, b, options, weights):
    out = fakes.EXACT.call(fw, a, b, options, weights)
    return out * out.dtype.type(1.001) if options == PLANTED_OPTIONS else out


def planted_apis():
    """What `--api tests.test_diff_fakes:planted_apis` loads."""
    return [dataclasses.replace(fakes.EXACT, call=_planted)]
