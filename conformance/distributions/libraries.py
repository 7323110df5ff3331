"""Adapters for distribution-level KL: the only place torch.distributions, TFP and distrax are imported.

A `Library` is one declarative entry: which framework's arrays it takes (torch, tensorflow,
jax: klconf's bindings convert and place them), how to import it (lazily, on first use), and
how to call its KL. The loaded handle also carries `lookup(type_p, type_q)`, the library's own
registry lookup (the function kl_divergence would call, or None), and `registry()`. How each library spells a
family lives in families.CONSTRUCTORS, not here.

TFP's JAX substrate (and distrax, which is built on it) fails with newer JAX:
tensorflow-probability 0.25 touches `jax.interpreters.xla.pytype_aval_mappings`, which JAX
deprecated in 0.5.0 and removed in 0.7.0 (jax 0.4.35 to 0.6.x work with it; 0.7 and later do not).
That failure is an `Unavailable` (a skip)
whose reason names both versions; the JAX side runs in tox.ini's jaxdist environment.
distrax 0.1.7 and later require jax >= 0.7 and tfp-nightly, so that environment pins
distrax 0.1.5, the last release that works with tensorflow-probability 0.25.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from ..frameworks import Tolerance, Unavailable, binding
from .families import CONSTRUCTORS, Constructor

JAXDIST_HINT = "run the JAX side with `tox -e jaxdist` (jax 0.4.35, tensorflow-probability 0.25, distrax 0.1.5)"


@dataclass(frozen=True)
class Library:
    """One distribution-level KL entry point."""

    name: str  # the public call, as reported
    key: str  # its column in families.CONSTRUCTORS (and its name on registry.py's command line)
    framework: str  # whose binding converts arrays and names devices: torch, tensorflow or jax
    modules: tuple[str, ...]  # import names whose absence makes it unavailable (checked without importing)
    load: Callable[[], Any]  # -> handle: the framework attributes the binding expects, plus dist, kl, registered
    versions: Callable[[Any], dict]
    x64_context: bool = False  # float64 needs JAX's x64 mode
    constructors: dict | None = None  # family -> Constructor, for a library outside families.CONSTRUCTORS
    tolerances: dict = field(default_factory=dict)  # (p_family, q_family, dtype) -> Tolerance; "*" matches any
    notes: str = ""

    def constructor(self, family: str) -> Constructor | None:
        return (self.constructors if self.constructors is not None else CONSTRUCTORS[self.key]).get(family)

    def tolerance(self, p_family: str, q_family: str, dtype: str) -> Tolerance | None:
        for key in ((p_family, q_family, dtype), (p_family, q_family, "*"), ("*", "*", dtype)):
            if key in self.tolerances:
                return self.tolerances[key]
        return None

    def missing(self) -> str | None:
        import importlib.util

        for module in self.modules:
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed"
        return None

    def context(self, handle, dtype: str, device: str):
        """Where a call runs: JAX's x64 mode for float64, TensorFlow's device scope."""
        if self.x64_context and dtype == "float64":
            jax = handle.jax
            return jax.enable_x64(True) if hasattr(jax, "enable_x64") else jax.experimental.enable_x64()
        framework = binding(self.framework)
        if framework.call_context and self.framework != "jax":
            return framework.call_context(handle, dtype, device)
        return contextlib.nullcontext()


_HANDLES: dict[str, Any] = {}


def handle(library: Library):
    """Import a library once per process; a failed import is an Unavailable with its reason."""
    if library.name not in _HANDLES:
        missing = library.missing()
        if missing:
            raise Unavailable(missing)
        try:
            _HANDLES[library.name] = library.load()
        except Unavailable:
            raise
        except Exception as exc:
            raise Unavailable(f"{library.name} failed to import: {type(exc).__name__}: {exc}") from exc
    return _HANDLES[library.name]


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# --------------------------------------------------------------------------- torch


def _load_torch():
    import torch
    import torch.distributions as dist
    from torch.distributions import kl

    return SimpleNamespace(
        torch=torch,
        dist=dist,
        kl=kl.kl_divergence,
        # _dispatch_kl is the lookup kl_divergence itself uses (most specific registered superclasses)
        lookup=lambda tp, tq: None if kl._dispatch_kl(tp, tq) is NotImplemented else kl._dispatch_kl(tp, tq),
        registry=lambda: dict(kl._KL_REGISTRY),
        diag_embed=torch.diag_embed,
    )


# --------------------------------------------------------------------------- TensorFlow Probability


def _load_tfp():
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import tensorflow_probability as tfp
    from tensorflow_probability.python.distributions import kullback_leibler

    return SimpleNamespace(
        tf=tf,
        dist=tfp.distributions,
        kl=tfp.distributions.kl_divergence,
        # _registered_kl is the lookup kl_divergence itself uses (nearest pair along both MROs)
        lookup=kullback_leibler._registered_kl,
        registry=lambda: dict(kullback_leibler._DIVERGENCES),
        diag_embed=tf.linalg.diag,
    )


def _import_tfp_jax():
    import jax
    import jax.numpy as jnp

    try:  # the substrate loads lazily: the incompatibility surfaces on first attribute access
        from tensorflow_probability.substrates import jax as tfp
        from tensorflow_probability.substrates.jax.distributions import kullback_leibler

        _ = tfp.distributions.Normal
    except Exception as exc:
        raise Unavailable(
            f"tensorflow-probability {_version('tensorflow-probability')}'s JAX substrate does not work with "
            f"jax {jax.__version__} ({type(exc).__name__}: {exc}); {JAXDIST_HINT}"
        ) from exc
    return jax, jnp, tfp, kullback_leibler


def _load_tfp_jax():
    jax, jnp, tfp, kullback_leibler = _import_tfp_jax()
    return SimpleNamespace(
        jax=jax,
        jnp=jnp,
        dist=tfp.distributions,
        kl=tfp.distributions.kl_divergence,
        lookup=kullback_leibler._registered_kl,
        registry=lambda: dict(kullback_leibler._DIVERGENCES),
        diag_embed=lambda x: x[..., None] * jnp.eye(x.shape[-1], dtype=x.dtype),
    )


def _load_distrax():
    jax, jnp, tfp, kullback_leibler = _import_tfp_jax()  # distrax imports the substrate first thing
    import distrax

    # distrax registers its closed forms in the substrate's registry, and Distribution.kl_divergence
    # dispatches through it (distrax/_src/distributions/distribution.py, kl_divergence)
    return SimpleNamespace(
        jax=jax,
        jnp=jnp,
        dist=distrax,
        kl=lambda p, q: p.kl_divergence(q),
        lookup=kullback_leibler._registered_kl,
        registry=lambda: {
            (a, b): fn
            for (a, b), fn in kullback_leibler._DIVERGENCES.items()
            if a.__module__.startswith("distrax") or b.__module__.startswith("distrax")
        },
        diag_embed=lambda x: x[..., None] * jnp.eye(x.shape[-1], dtype=x.dtype),
    )


def _jax_versions(extra: str):
    def versions(h) -> dict:
        out = {
            "jax": h.jax.__version__,
            "jaxlib": _version("jaxlib"),
            "tensorflow-probability": _version("tensorflow-probability"),
        }
        if extra:
            out[extra] = _version(extra)
        return out

    return versions


LIBRARIES: list[Library] = [
    Library(
        name="torch.distributions.kl.kl_divergence",
        key="torch",
        framework="torch",
        modules=("torch",),
        load=_load_torch,
        versions=lambda h: {"torch": h.torch.__version__},
    ),
    Library(
        name="tfp.distributions.kl_divergence",
        key="tfp",
        framework="tensorflow",
        modules=("tensorflow", "tensorflow_probability"),
        load=_load_tfp,
        versions=lambda h: {
            "tensorflow": h.tf.__version__,
            "tensorflow-probability": _version("tensorflow-probability"),
        },
    ),
    Library(
        name="tfp.substrates.jax.distributions.kl_divergence",
        key="tfp_jax",
        framework="jax",
        modules=("jax", "tensorflow_probability"),
        load=_load_tfp_jax,
        versions=_jax_versions(""),
        x64_context=True,
    ),
    Library(
        name="distrax.Distribution.kl_divergence",
        key="distrax",
        framework="jax",
        modules=("jax", "tensorflow_probability", "distrax"),
        load=_load_distrax,
        versions=_jax_versions("distrax"),
        x64_context=True,
    ),
]


def all_libraries() -> list[Library]:
    """The entries above and those framework modules export (`distribution_libraries`)."""
    from ..frameworks import distribution_libraries

    return LIBRARIES + distribution_libraries()


def by_framework(frameworks: list[str] | tuple[str, ...]) -> list[Library]:
    return [lib for lib in all_libraries() if lib.framework in frameworks]


def build(library: Library, h, family: str, fed: dict, dtype: str, device: str):
    """The library's distribution object for `family`, from the fed parameter values (NumPy carriers)."""
    ctor = library.constructor(family)
    assert ctor is not None, f"{library.name} is asked to build {family}, which it does not cover"
    framework = binding(library.framework)
    kwargs = {}
    for keyword, source in ctor.kwargs.items():
        if isinstance(source, tuple) and source[0] == "const":
            kwargs[keyword] = source[1]
        elif isinstance(source, tuple) and source[0] == "diag_embed":
            kwargs[keyword] = h.diag_embed(framework.to_native(h, fed[source[1]], dtype, device))
        else:
            kwargs[keyword] = framework.to_native(h, fed[source], dtype, device)
    cls = h.dist
    for part in ctor.cls.split("."):
        cls = getattr(cls, part)
    return cls(**kwargs)
