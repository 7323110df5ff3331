"""Plug-in implementations that misbehave in every way a pre-release build can: klconf must turn
each into its own recorded verdict and carry on. Used by tests/test_reliability.py."""
from __future__ import annotations

import ctypes
import os
import signal
import time

import numpy as np

from conformance.frameworks import Api
from tests.fakes import EXACT


def _api(name, call):
    return Api(name=name, framework="numpy", call=call, convention=EXACT.convention, options=EXACT.options[:1],
               dtypes=("float64",), devices=("cpu",))


def _raises(fw, a, b, o, w):
    raise RuntimeError("kernel exploded")


def _hang_in_python(fw, a, b, o, w):
    time.sleep(3600)


def _hang_outside_python(fw, a, b, o, w):
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # like C code that never returns to Python
    time.sleep(3600)


def _segfault(fw, a, b, o, w):
    ctypes.string_at(0)


RAISES = _api("faulty.raises", _raises)
NAN = _api("faulty.nan", lambda fw, a, b, o, w: np.full((), np.nan))
WRONG_SHAPE = _api("faulty.wrong_shape", lambda fw, a, b, o, w: np.zeros((7, 7)))
NOT_AN_ARRAY = _api("faulty.not_an_array", lambda fw, a, b, o, w: "0.25")
HANGS = _api("faulty.hangs", _hang_in_python)
HANGS_HARD = _api("faulty.hangs_hard", _hang_outside_python)
EXITS = _api("faulty.exits", lambda fw, a, b, o, w: os._exit(3))
SEGFAULTS = _api("faulty.segfaults", _segfault)
SLOW = _api("faulty.slow", lambda fw, a, b, o, w: (time.sleep(0.3), EXACT.call(fw, a, b, o, w))[1])

ALL = [EXACT, RAISES, NAN, WRONG_SHAPE, NOT_AN_ARRAY, HANGS, HANGS_HARD, EXITS, SEGFAULTS]
EXPECTED = {  # api -> (verdict, kind)
    "fake.exact": ("pass", None),
    "faulty.raises": ("error", "exception"),
    "faulty.nan": ("fail", "nan"),
    "faulty.wrong_shape": ("fail", "shape"),
    "faulty.not_an_array": ("error", "exception"),
    "faulty.hangs": ("timeout", "timeout"),
    "faulty.hangs_hard": ("timeout", "timeout"),
    "faulty.exits": ("crash", "crash"),
    "faulty.segfaults": ("crash", "crash"),
}
