"""Framework bindings and the registry of KL APIs.

Each module here (torch, jax, tensorflow, scipy, numpy) is the only place its framework
is imported, and imports it lazily: listing APIs costs nothing, and a run that selects
one framework never imports another. A KL API is one declarative `Api` entry; a
third-party implementation is an `Api` (or a list of them) loaded with
`--api module:object`.
"""
from __future__ import annotations

import importlib
import importlib.util
import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..conventions import Convention
from ..dtypes import DTYPES
from ..outputs import shares_memory as numpy_shares_memory

FRAMEWORKS = ("torch", "jax", "tensorflow", "scipy")  # built in, in report order; "numpy" serves plug-ins
DEVICES = ("cpu", "cuda")


class Unavailable(Exception):
    """A framework or device is missing: the check is skipped with this reason."""


@dataclass(frozen=True)
class Tolerance:
    """A widened tolerance for one API; the reason is mandatory and shown with every result."""

    factor: float
    reason: str

    def __post_init__(self):
        if not self.reason.strip():
            raise ValueError("a tolerance override must name its reason")


@dataclass(frozen=True)
class Snippet:
    """How a reproduction snippet (conformance/repro.py) builds a framework's inputs and reads its output,
    in plain source text, so that the snippet runs with only that framework and NumPy installed."""

    imports: str  # import lines (NumPy is always imported as np)
    native: Callable[[str, str, str], str]  # (NumPy array expression, dtype, device) -> native array expression
    to_numpy: str  # expression over {result} giving a float64 NumPy array
    prelude: Callable[[str, str], str] = lambda dtype, device: ""  # (dtype, device) -> lines run after the imports
    context: Callable[[str, str], str] = lambda dtype, device: ""  # (dtype, device) -> a `with` header, or ""


@dataclass(frozen=True)
class Api:
    """One public KL entry point and the option combinations klconf covers.

    `call(fw, a, b, options, weights)` receives the framework handle from the binding
    (`fw.torch`, `fw.jnp`, ...) and the two arguments as native arrays in the order of
    `convention(options).arguments`; it returns the API's output as a native value.

    `snippet` is the same call as source text for reproduction snippets: a template (or a
    function of the options returning one) in which {a} and {b} name the two arguments in call
    order, {w} the sample weights (None when the check feeds none), {o[name]} an option and
    {dtype} the dtype; several lines are statements and the last line is the result.
    """

    name: str
    framework: str
    call: Callable[..., Any]
    convention: Callable[[dict], Convention]
    options: tuple[dict, ...] = ({},)  # the first is the API's defaults
    dtypes: tuple[str, ...] = DTYPES
    devices: tuple[str, ...] = DEVICES
    tolerance: Tolerance | None = None
    differentiable: tuple[str, ...] = ()  # argument names a gradient may be taken with respect to
    requires: tuple[str, ...] = ()  # extra modules beyond the framework's own (e.g. optax)
    broadcasts: bool = True  # accepts P and Q of different, broadcastable batch shapes
    identity: str = ""  # "cross_entropy": computes KL as H(P, Q) - H(P) from the framework's cross-entropy
    notes: str = ""
    doc_url: str = ""
    snippet: str | Callable[[dict], str] | None = None
    keeps_dtype: bool = False  # the output has the fed dtype: any other output dtype fails (kind "dtype")

    def option_label(self, options: dict) -> str:
        return ",".join(f"{k}={_label(v)}" for k, v in options.items())

    def is_default(self, options: dict) -> bool:
        return options == self.options[0]

    def missing(self) -> str | None:
        """Why this API cannot run here (a module not installed), checked without importing."""
        for module in self.requires:
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed"
        return None


def _label(value) -> str:
    return "None" if value is None else str(value)


def grid(**axes: Sequence) -> tuple[dict, ...]:
    """Every combination of option values; the first value of each axis is the default."""
    keys = list(axes)
    return tuple(dict(zip(keys, combo)) for combo in itertools.product(*(axes[k] for k in keys)))


@dataclass
class Binding:
    """How klconf talks to one framework: versions, devices, array conversion."""

    name: str
    modules: tuple[str, ...]  # import names whose absence makes the framework unavailable
    load: Callable[[], Any]  # imports the framework, returns a handle passed to Api.call
    version: Callable[[Any], dict]
    devices: Callable[[Any], list[str]]
    to_native: Callable[[Any, np.ndarray, str, str], Any]  # (fw, carrier values, dtype, device)
    to_numpy: Callable[[Any, Any], tuple[np.ndarray, str]]  # -> (float64 values, output dtype name)
    settings: Callable[[Any], dict] = lambda fw: {}
    call_context: Callable[[Any, str, str], Any] | None = None  # (fw, dtype, device) -> context manager
    check_settings: Callable[[Any, str, str], dict] = lambda fw, dtype, device: {}  # recorded per check
    snippet: Snippet | None = None  # how reproduction snippets feed and read this framework
    # (fw, fn(a, b) -> native output, [a, b], index) -> d(sum of fn's output)/d(args[index]); None: no autodiff
    gradient: Callable[[Any, Callable, list, int], Any] | None = None
    # Process-global settings an API could change and later checks depend on (default dtype, threads,
    # precision and determinism flags, ...): read before and after every call (conformance/sandbox.py);
    # `restore(fw, changed)` puts back the saved values of the names that changed.
    state: Callable[[Any], dict] | None = None
    restore: Callable[[Any, dict], None] = lambda fw, changed: None
    # (fw, output, input) -> whether the output's memory overlaps the input's (an aliasing output)
    shares_memory: Callable[[Any, Any, Any], bool] = numpy_shares_memory
    mutable_inputs: bool = True  # False where native arrays are immutable (JAX, TensorFlow): no mutation check
    _handle: Any = field(default=None, repr=False)

    def available(self) -> str | None:
        """None when importable, else the reason it is not (checked without importing)."""
        for module in self.modules:
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed"
        return None

    def handle(self):
        """Import the framework once per process."""
        if self._handle is None:
            reason = self.available()
            if reason:
                raise Unavailable(reason)
            try:
                self._handle = self.load()
            except Exception as exc:  # a broken install is a skip with its reason, not a crash
                raise Unavailable(f"{self.name} failed to import: {type(exc).__name__}: {exc}") from exc
        return self._handle


def binding(framework: str) -> Binding:
    return _module(framework).BINDING


def builtin_apis(frameworks: Iterable[str] = FRAMEWORKS) -> list[Api]:
    return [api for fw in frameworks for api in _module(fw).APIS]


def _module(framework: str):
    if framework not in FRAMEWORKS + ("numpy",):
        raise KeyError(f"unknown framework {framework!r} (known: {', '.join(FRAMEWORKS + ('numpy',))})")
    return importlib.import_module(f"{__name__}.{framework}")


def load_plugin(spec: str) -> list[Api]:
    """`module:object` -> the Api entries it names (an Api, a list of them, or a callable returning either)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--api expects MODULE:OBJECT, got {spec!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if callable(obj) and not isinstance(obj, Api):
        obj = obj()
    apis = [obj] if isinstance(obj, Api) else list(obj)
    for api in apis:
        if not isinstance(api, Api):
            raise TypeError(f"{spec} yields {type(api).__name__}, not conformance.frameworks.Api")
        _module(api.framework)  # the framework must be one klconf can bind
    return apis
