"""The arithmetic the closed forms run in, and the helpers every formula shares.

A formula spells every constant, function and number through `M`, never mpmath directly, so one
formula serves two arithmetics: mpmath at a working precision (the default: closed_forms.evaluate)
and python-flint's arb balls (`certify.ARB`), whose results carry rigorous bounds (certify.py).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import mpmath

INF = math.inf  # an infinite KL, in either arithmetic (mpmath and arb compare with it)

_ARITHMETIC: ContextVar[Any] = ContextVar("closed_form_arithmetic", default=mpmath)


class _Current:
    def __getattr__(self, name: str):
        return getattr(_ARITHMETIC.get(), name)


M: Any = _Current()


@contextmanager
def arithmetic(namespace):
    """Evaluate the formulas in `namespace` (mpmath's names: mpf, log, loggamma, digamma, ...) within."""
    token = _ARITHMETIC.set(namespace)
    try:
        yield
    finally:
        _ARITHMETIC.reset(token)


Params = dict  # canonical parameter name -> mpf, list of mpf (vector) or list of lists (matrix)


class NotCovered(Exception):
    """The oracle has no closed form for this pair."""


def xlogy(x, y):
    """x*log(y) with 0*log(anything) = 0."""
    return M.mpf(0) if x == 0 else x * M.log(y)


def lnbeta(a, b):
    return M.loggamma(a) + M.loggamma(b) - M.loggamma(a + b)


def normalised(weights: list) -> list:
    total = M.fsum(weights)
    return [w / total for w in weights]
