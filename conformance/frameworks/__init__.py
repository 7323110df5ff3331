"""Framework bindings and the registry of KL APIs.

A framework is one module in this package, and the registry is the package itself: every
module whose name does not start with "_" is a framework, named after its module, and every
list of framework names klconf shows or accepts (command-line choices, pytest markers,
porting targets, report order, distribution libraries) is derived from what is found here,
so adding a framework is adding its module. A framework module exports:

    BINDING   a `Binding` named like the module (imports, versions, devices, arrays, autodiff)
    APIS      its built-in `Api` entries, each with `framework` set to the module's name
              (empty for a binding that only serves plug-ins, such as numpy)
    ORDER     optional: its place in reports (lower first; default 100, ties by name)
    VOCABULARY          optional: a `porting.vocabulary.Vocabulary`, making it a porting target
    distribution_libraries  optional: a function returning its `distributions.libraries.Library`
                            entries (a function, so that listing frameworks imports nothing more)

Each module is the only place its framework is imported, and imports it lazily: listing
APIs costs nothing, and a run that selects one framework never imports another. A KL API
is one declarative `Api` entry; a third-party implementation is an `Api` (or a list of
them) loaded with `--api module:object`.
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import pkgutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from ..conventions import Convention
from ..dtypes import DTYPES
from ..outputs import shares_memory as numpy_shares_memory
from ..porting.vocabulary import Vocabulary

DEVICES = ("cpu", "cuda")


class Unavailable(Exception):
    """A framework or device is missing: the check is skipped with this reason."""


@dataclass(frozen=True)
class Tolerance:
    """A widened tolerance for one API; the reason is mandatory and shown with every result."""

    factor: float
    reason: str

    def __post_init__(self) -> None:
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
    since: tuple[tuple[str, str], ...] = ()  # (package, first release with this API): older ones are "unsupported"

    def absent_from(self, versions: dict) -> str | None:
        """Why the installed releases (a binding's `version()`) predate this API, or None. A release matrix runs
        old releases too: an API they lack is `unsupported` there, not an error."""
        from packaging.version import InvalidVersion, Version

        for package, first in self.since:
            installed = versions.get(package)
            try:
                if installed is not None and Version(str(installed)) < Version(first):
                    return f"{self.name} first appeared in {package} {first} ({package} {installed} is installed)"
            except InvalidVersion:
                continue
        return None

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


def _label(value: object) -> str:
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
    # (fw, fn, [a, b], (i, j)) -> the gradients with respect to args[i] and args[j], in that order, from one
    # backward pass: what the gradient checks of an API's two differentiable arguments share (`gradients.py`).
    # Each must equal what `gradient` gives for its index alone, bit for bit. None: `gradient` per argument
    gradients: Callable[[Any, Callable, list, tuple[int, ...]], tuple] | None = None
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

    def handle(self) -> Any:
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


def builtin_apis(frameworks: Iterable[str] | None = None) -> list[Api]:
    """The built-in Api entries of these frameworks (default: every framework), in report order."""
    return [api for fw in (FRAMEWORKS if frameworks is None else frameworks) for api in _module(fw).APIS]


def _module(framework: str) -> ModuleType:
    if framework not in _REGISTRY:
        raise KeyError(f"unknown framework {framework!r} (known: {', '.join(_REGISTRY)})")
    return _REGISTRY[framework]


def vocabulary_of(framework: str) -> Vocabulary | None:
    """The framework's porting vocabulary, or None when equivalents cannot be written in it."""
    return getattr(_module(framework), "VOCABULARY", None)


def distribution_libraries() -> list:
    """Every framework module's distribution-level KL entries (`distributions.libraries.Library`)."""
    found: list = []
    for module in _REGISTRY.values():
        if hasattr(module, "distribution_libraries"):
            found += module.distribution_libraries()
    return found


def problems(module: ModuleType) -> list[str]:
    """What a framework module lacks or gets wrong; empty when it is complete."""
    name = module.__name__.rpartition(".")[2]
    found = []
    bind = getattr(module, "BINDING", None)
    if not isinstance(bind, Binding):
        found.append(f"{name}: BINDING is missing or not a Binding")
    elif bind.name != name:
        found.append(f"{name}: BINDING.name is {bind.name!r}, not the module's name")
    apis = getattr(module, "APIS", None)
    if not isinstance(apis, (list, tuple)) or not all(isinstance(a, Api) for a in apis):
        found.append(f"{name}: APIS is missing or not a list of Api entries")
    else:
        found += [f"{name}: {a.name} declares framework {a.framework!r}" for a in apis if a.framework != name]
    if not isinstance(getattr(module, "ORDER", 100), int):
        found.append(f"{name}: ORDER is not an int")
    voc = getattr(module, "VOCABULARY", None)
    if voc is not None and getattr(voc, "framework", None) != name:
        found.append(f"{name}: VOCABULARY is not a porting Vocabulary for {name!r}")
    if hasattr(module, "distribution_libraries") and not callable(module.distribution_libraries):
        found.append(f"{name}: distribution_libraries is not a function")
    return found


def _discover() -> dict[str, ModuleType]:
    """Import every framework module of this package (cheap: frameworks load lazily), in report order."""
    modules = {}
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            modules[info.name] = importlib.import_module(f"{__name__}.{info.name}")
    wrong = [p for m in modules.values() for p in problems(m)]
    if wrong:
        raise ImportError("incomplete framework module(s): " + "; ".join(wrong))
    return dict(sorted(modules.items(), key=lambda item: (getattr(item[1], "ORDER", 100), item[0])))


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


# The registry: discovered last, once the names framework modules import from here exist.
_REGISTRY = _discover()
KNOWN = tuple(_REGISTRY)  # every framework a binding exists for, in report order (numpy serves plug-ins)
FRAMEWORKS = tuple(name for name, module in _REGISTRY.items() if module.APIS)  # those with built-in APIs
PORTING_TARGETS = tuple(name for name in FRAMEWORKS if vocabulary_of(name) is not None)
