"""Plug-in implementations that misbehave in every way a pre-release build can: klconf must turn
each into its own recorded verdict and carry on. Used by tests/test_reliability*.py.

Each fault is one `Fault`: the API, the verdict and failure kind its check must get, and a fragment
its record's message must contain (the message names the cause). The NumPy faults run without any
framework; FRAMEWORK_STATE needs torch, JAX and TensorFlow.
"""

from __future__ import annotations

import ctypes
import gc
import io
import os
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass

import numpy as np

from conformance.conventions import Convention
from conformance.frameworks import Api
from tests.fakes import EXACT


@dataclass(frozen=True)
class Fault:
    api: Api
    verdict: str
    kind: str | None
    says: str  # a fragment of the record's message that names the cause


def _api(name, call, **kwargs):
    return Api(
        name=name,
        framework="numpy",
        call=call,
        convention=EXACT.convention,
        options=EXACT.options[:1],
        dtypes=("float64",),
        devices=("cpu",),
        **kwargs,
    )


def _exact(fw, a, b, o, w):
    return EXACT.call(fw, a, b, o, w)


def _then_exact(effect):
    """A correct result after a side effect."""

    def call(fw, a, b, o, w):
        effect()
        return _exact(fw, a, b, o, w)

    return call


def _raise(exc):
    def call(fw, a, b, o, w):
        raise exc

    return call


# ---------------------------------------------------------------- the first pass's faults (kept)


def _hang_in_python(fw, a, b, o, w):
    time.sleep(3600)


def _hang_outside_python(fw, a, b, o, w):
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # like C code that never returns to Python
    time.sleep(3600)


def _segfault(fw, a, b, o, w):
    ctypes.string_at(0)


RAISES = _api("faulty.raises", _raise(RuntimeError("kernel exploded")))
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
    "faulty.not_an_array": ("fail", "non_numeric"),
    "faulty.hangs": ("timeout", "timeout"),
    "faulty.hangs_hard": ("timeout", "timeout"),
    "faulty.exits": ("crash", "crash"),
    "faulty.segfaults": ("crash", "crash"),
}


# ---------------------------------------------------------------- every kind of BaseException


class FaultyBaseException(BaseException):
    """Not an Exception: `except Exception` in klconf would miss it."""


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no message for you")


def _recurse(fw, a, b, o, w):
    return _recurse(fw, a, b, o, w)


def _sys_exit(fw, a, b, o, w):
    sys.exit(3)


BASE_EXCEPTIONS = [
    Fault(
        _api("faulty.keyboard_interrupt", _raise(KeyboardInterrupt("raised by the API"))),
        "error",
        "exception",
        "KeyboardInterrupt: raised by the API",
    ),
    Fault(_api("faulty.sys_exit", _sys_exit), "error", "exception", "SystemExit: 3"),
    Fault(_api("faulty.generator_exit", _raise(GeneratorExit())), "error", "exception", "GeneratorExit"),
    Fault(
        _api("faulty.custom_base_exception", _raise(FaultyBaseException("custom"))),
        "error",
        "exception",
        "FaultyBaseException: custom",
    ),
    Fault(
        _api("faulty.stop_iteration", _raise(StopIteration("exhausted"))),
        "error",
        "exception",
        "StopIteration: exhausted",
    ),
    Fault(_api("faulty.memory_error", _raise(MemoryError("out of memory"))), "error", "exception", "MemoryError"),
    Fault(_api("faulty.infinite_recursion", _recurse), "error", "exception", "RecursionError"),
    Fault(
        _api("faulty.unprintable_exception", _raise(Unprintable())),
        "error",
        "exception",
        "Unprintable: <the exception's message could not be read>",
    ),
    Fault(RAISES, "error", "exception", "RuntimeError: kernel exploded"),
]


# ---------------------------------------------------------------- process-global state


def _sleeper():
    threading.Thread(target=time.sleep, args=(30,), name="faulty-sleeper", daemon=True).start()


def _mpmath_precision():
    import mpmath

    mpmath.mp.prec = 12


def _steal_stdout():
    sys.stdout = io.StringIO()


GLOBAL_STATE = [
    Fault(
        _api("faulty.numpy_errstate", _then_exact(lambda: np.seterr(all="raise"))),
        "pass",
        None,
        "changed numpy.errstate",
    ),
    Fault(
        _api("faulty.numpy_printoptions", _then_exact(lambda: np.set_printoptions(precision=1))),
        "pass",
        None,
        "changed numpy.printoptions",
    ),
    Fault(
        _api("faulty.recursion_limit", _then_exact(lambda: sys.setrecursionlimit(300))),
        "pass",
        None,
        "changed sys.recursionlimit",
    ),
    Fault(
        _api("faulty.warnings_filter", _then_exact(lambda: warnings.simplefilter("error"))),
        "pass",
        None,
        "changed warnings.filters",
    ),
    Fault(_api("faulty.chdir", _then_exact(lambda: os.chdir("/"))), "pass", None, "changed os.getcwd"),
    Fault(
        _api("faulty.sys_path", _then_exact(lambda: sys.path.insert(0, "/nonexistent-faulty"))),
        "pass",
        None,
        "changed sys.path",
    ),
    Fault(
        _api("faulty.environ", _then_exact(lambda: os.environ.__setitem__("KLCONF_FAULTY", "1"))),
        "pass",
        None,
        "changed os.environ (KLCONF_FAULTY",
    ),
    Fault(
        _api("faulty.sigint_handler", _then_exact(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))),
        "pass",
        None,
        "changed signal handler SIGINT",
    ),
    Fault(
        _api("faulty.sigalrm_handler", _then_exact(lambda: signal.signal(signal.SIGALRM, signal.SIG_IGN))),
        "pass",
        None,
        "replaced the SIGALRM handler",
    ),
    Fault(_api("faulty.stdout_object", _then_exact(_steal_stdout)), "pass", None, "changed sys.stdout"),
    Fault(_api("faulty.gc_disabled", _then_exact(gc.disable)), "pass", None, "changed gc.isenabled"),
    Fault(_api("faulty.mpmath_precision", _then_exact(_mpmath_precision)), "pass", None, "changed mpmath.mp.prec"),
    Fault(
        _api("faulty.thread_left_running", _then_exact(_sleeper)),
        "pass",
        None,
        "left 1 thread(s) running: faulty-sleeper",
    ),
]


# ---------------------------------------------------------------- output to the terminal


def _print_flood():
    print("x" * 999_999)  # a megabyte through Python's sys.stdout


def _fd1_write():
    os.write(1, b"garbage written straight to file descriptor 1\n" * 100)


def _fd2_flood():
    os.write(2, b"e" * 2_000_000)


OUTPUT = [
    Fault(
        _api("faulty.print_flood", _then_exact(_print_flood)), "pass", None, "wrote 1,000,000 bytes to standard output"
    ),
    Fault(_api("faulty.fd1_write", _then_exact(_fd1_write)), "pass", None, "to standard output (file descriptor 1)"),
    Fault(
        _api("faulty.fd2_flood", _then_exact(_fd2_flood)),
        "pass",
        None,
        "wrote 2,000,000 bytes to standard error (file descriptor 2)",
    ),
]


# ---------------------------------------------------------------- what comes back, and what happens to the inputs


def _as(dtype, shift=0.0):
    def call(fw, a, b, o, w):
        return np.asarray(np.asarray(_exact(fw, a, b, o, w)) + shift).astype(dtype)

    return call


def _alias(fw, a, b, o, w):
    return b.reshape(-1)[:1].reshape(())  # a view of the target


def _mutates(fw, a, b, o, w):
    out = _exact(fw, a, b, o, w)
    a *= 2.0  # in place, after computing a correct value
    return out


def _float32(fw, a, b, o, w):
    return np.asarray(_exact(fw, a, b, o, w), np.float32)


OUTPUT_TYPES = [
    Fault(
        _api("faulty.complex", _as(np.complex128, 1j)),
        "fail",
        "complex",
        "out.dtype=complex128, but should be a real floating-point dtype (fed float64) (imaginary parts up to 1)",
    ),
    Fault(
        _api("faulty.complex_zero_imaginary", _as(np.complex128)),
        "fail",
        "complex",
        "out.dtype=complex128, but should be a real floating-point dtype (fed float64) (every imaginary part is 0)",
    ),
    Fault(_api("faulty.integer", _as(np.int64)), "fail", "integer", "out.dtype=int64, but should be"),
    Fault(_api("faulty.boolean", _as(np.bool_)), "fail", "boolean", "out.dtype=bool, but should be"),
    Fault(_api("faulty.object", _as(object)), "fail", "non_numeric", "out.dtype=object, but should be"),
    Fault(NOT_AN_ARRAY, "fail", "non_numeric", "out.dtype=str, but should be"),
    Fault(
        _api("faulty.dtype_changed", _float32, keeps_dtype=True),
        "fail",
        "dtype",
        "out.dtype=float32, but should be float64",
    ),
    Fault(_api("faulty.aliases_input", _alias), "fail", "alias", "the output shares memory with the input 'target'"),
    Fault(_api("faulty.mutates_input", _mutates), "fail", "mutation", "the call changed its input 'input'"),
    Fault(NAN, "fail", "nan", "NaN"),
    Fault(WRONG_SHAPE, "fail", "shape", "[7, 7]"),
]


def _state_probe(fw, a, b, o, w):
    """Correct only where no earlier fault's state reached this call."""
    import mpmath

    clean = (
        np.geterr()["invalid"] == "warn"
        and sys.getrecursionlimit() >= 1000
        and os.getcwd() != "/"
        and "/nonexistent-faulty" not in sys.path
        and "KLCONF_FAULTY" not in os.environ
        and gc.isenabled()
        and mpmath.mp.prec > 12
        and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
    )
    return _exact(fw, a, b, o, w) if clean else np.full((), np.nan)


STATE_PROBE = Fault(_api("faulty.state_probe", _state_probe), "pass", None, "")

NUMPY_FAULTS = BASE_EXCEPTIONS + GLOBAL_STATE + OUTPUT + OUTPUT_TYPES + [STATE_PROBE]
NUMPY_APIS = [f.api for f in NUMPY_FAULTS]


# ---------------------------------------------------------------- framework state (torch, JAX, TensorFlow)

_BATCHMEAN = Convention(
    arguments=("input", "target"),
    p_argument="target",
    input_space=("log_prob", "prob"),
    reduction="mean_batch",
    class_axis=None,
    batch_divisor="dim0",
)


def _framework_api(name, framework, effect, correct, differentiable=()):
    def call(fw, a, b, o, w):
        if effect is not None:
            effect(fw)
        return correct(fw, a, b)

    return Api(
        name=name,
        framework=framework,
        call=call,
        convention=lambda o: _BATCHMEAN,
        options=({},),
        dtypes=("float64",),
        devices=("cpu",),
        differentiable=differentiable,
    )


def _torch_kl(fw, log_q, p):
    return fw.F.kl_div(log_q, p, reduction="batchmean")


def _jax_kl(fw, log_q, p):
    return (fw.special.xlogy(p, p) - p * log_q).sum() / log_q.shape[0]


def _tf_kl(fw, log_q, p):
    return fw.tf.reduce_sum(fw.tf.math.xlogy(p, p) - p * log_q) / fw.tf.cast(fw.tf.shape(log_q)[0], log_q.dtype)


def _torch_probe(fw, log_q, p):
    t = fw.torch
    clean = t.get_default_dtype() == t.float32 and t.is_grad_enabled() and not t.are_deterministic_algorithms_enabled()
    return _torch_kl(fw, log_q, p) if clean else t.full((), float("nan"), dtype=log_q.dtype)


def _jax_probe(fw, log_q, p):
    config = fw.jax.config
    x64 = config._value_holders["jax_enable_x64"].get_global()  # the global flag, not klconf's float64 context
    clean = not (config.jax_disable_jit or x64) and config.jax_default_matmul_precision is None
    return _jax_kl(fw, log_q, p) if clean else fw.jnp.full((), fw.jnp.nan, dtype=log_q.dtype)


def _tf_probe(fw, log_q, p):
    clean = fw.keras.config.floatx() == "float32" and fw.tf.config.experimental.tensor_float_32_execution_enabled()
    return _tf_kl(fw, log_q, p) if clean else fw.tf.fill([], fw.tf.constant(float("nan"), log_q.dtype))


def _interrupting_kl(fw, log_q, p):
    """Correct values; its backward pass raises KeyboardInterrupt (the gradient check's error, not the run's end)."""

    class Interrupting(fw.torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, grad):
            raise KeyboardInterrupt("raised in backward")

    return _torch_kl(fw, Interrupting.apply(log_q), p)


FRAMEWORK_STATE = [
    Fault(
        _framework_api(
            "faulty.torch_default_dtype", "torch", lambda fw: fw.torch.set_default_dtype(fw.torch.float16), _torch_kl
        ),
        "pass",
        None,
        "changed torch.get_default_dtype (torch.float32 -> torch.float16)",
    ),
    Fault(
        _framework_api("faulty.torch_grad_disabled", "torch", lambda fw: fw.torch.set_grad_enabled(False), _torch_kl),
        "pass",
        None,
        "changed torch.is_grad_enabled (True -> False)",
    ),
    Fault(
        _framework_api(
            "faulty.torch_deterministic", "torch", lambda fw: fw.torch.use_deterministic_algorithms(True), _torch_kl
        ),
        "pass",
        None,
        "changed torch.are_deterministic_algorithms_enabled",
    ),
    Fault(
        _framework_api(
            "faulty.jax_disable_jit", "jax", lambda fw: fw.jax.config.update("jax_disable_jit", True), _jax_kl
        ),
        "pass",
        None,
        "changed jax.config.jax_disable_jit (False -> True)",
    ),
    Fault(
        _framework_api(
            "faulty.jax_matmul_precision",
            "jax",
            lambda fw: fw.jax.config.update("jax_default_matmul_precision", "bfloat16"),
            _jax_kl,
        ),
        "pass",
        None,
        "changed jax.config.jax_default_matmul_precision",
    ),
    Fault(
        _framework_api("faulty.jax_x64_on", "jax", lambda fw: fw.jax.config.update("jax_enable_x64", True), _jax_kl),
        "pass",
        None,
        "changed jax.config.jax_enable_x64 (False -> True)",
    ),
    Fault(
        _framework_api("faulty.keras_floatx", "tensorflow", lambda fw: fw.keras.config.set_floatx("float16"), _tf_kl),
        "pass",
        None,
        "changed keras.config.floatx ('float32' -> 'float16')",
    ),
    Fault(
        _framework_api(
            "faulty.tf_tensor_float_32",
            "tensorflow",
            lambda fw: fw.tf.config.experimental.enable_tensor_float_32_execution(False),
            _tf_kl,
        ),
        "pass",
        None,
        "changed tf.config.experimental.tensor_float_32_execution_enabled (True -> False)",
    ),
    Fault(
        _framework_api(
            "faulty.torch_interrupt_in_backward", "torch", None, _interrupting_kl, differentiable=("input",)
        ),
        "pass",
        None,
        "",
    ),
    Fault(_framework_api("faulty.torch_state_probe", "torch", None, _torch_probe), "pass", None, ""),
    Fault(_framework_api("faulty.jax_state_probe", "jax", None, _jax_probe), "pass", None, ""),
    Fault(_framework_api("faulty.tf_state_probe", "tensorflow", None, _tf_probe), "pass", None, ""),
]


FRAMEWORK_APIS = [f.api for f in FRAMEWORK_STATE]
