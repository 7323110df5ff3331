"""JAX's KL entry points: jax.scipy.special and optax (the only module that imports them).

float64 needs x64: checks in float64 run inside `jax.enable_x64(True)` and their records
say so; every other dtype runs with JAX's default (x64 off).

JAX run eagerly compiles every primitive afresh for every new shape and dtype (about 25 ms each on the
project's machine, several per API call), which is most of what a JAX check costs. klconf therefore turns on
JAX's persistent compilation cache for every compile, next to the oracle's disk cache: a later run, another
pytest-xdist worker or a porting verification loads the compiled executable instead of compiling it again.
The cache stores what XLA compiled, keyed by JAX's own version, backend and flags, so a value computed from
it is the value a fresh compile gives. KLCONF_CACHE_DIR=off (the tests' setting) turns it off, and a cache
folder the user configured for JAX is left as it is.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ..conventions import Convention
from ..porting.vocabulary import Vocabulary
from . import Api, Binding, Snippet, Unavailable

ORDER = 20  # place in reports


def _load():
    import jax
    import jax.numpy as jnp
    import jax.scipy.special as jss

    _persistent_compilation_cache(jax)

    try:
        import optax
    except ImportError:  # optax APIs declare requires=("optax",) and are skipped
        optax = None
    return SimpleNamespace(jax=jax, jnp=jnp, special=jss, optax=optax)


def _persistent_compilation_cache(jax) -> None:
    """Every compile cached on disk (see the module's docstring), unless klconf's caches are off or JAX's
    cache folder is already chosen (JAX_COMPILATION_CACHE_DIR or the user's own config)."""
    configured = os.environ.get("KLCONF_CACHE_DIR", "")
    if configured.lower() in ("0", "off", "none") or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    try:
        if jax.config.jax_compilation_cache_dir:
            return
        folder = Path(configured) / "jax" if configured else Path.home() / ".cache" / "klconf" / "jax"
        jax.config.update("jax_compilation_cache_dir", str(folder))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)  # eager ops compile in ~25 ms
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)  # (-1: no minimum size)
    except (AttributeError, KeyError, ValueError):  # a release without these options compiles as before
        return


def _device(fw, device: str):
    platform = {"cpu": "cpu", "cuda": "gpu"}[device]
    try:
        return fw.jax.devices(platform)[0]
    except RuntimeError as exc:
        raise Unavailable(f"JAX sees no {device} device") from exc


def _devices(fw) -> list[str]:
    found = []
    for device in ("cpu", "cuda"):
        try:
            _device(fw, device)
            found.append(device)
        except Unavailable:
            pass
    return found


def _to_native(fw, values: np.ndarray, dtype: str, device: str):
    """The carrier cast to `dtype` in NumPy (ml_dtypes' types are JAX's), then put on the device: no JAX
    program runs, where jnp.asarray and astype would compile one per shape and dtype (from JAX 0.10)."""
    target = _device(fw, device)
    return fw.jax.device_put(np.ascontiguousarray(values).astype(getattr(fw.jnp, dtype)), target)


def _to_numpy(fw, out):
    """The output read back in NumPy, then widened there (a bfloat16 output too: its NumPy type is JAX's
    own), exactly: widening on the device (`out.astype`) would compile a JAX program per shape."""
    if not isinstance(out, fw.jax.Array):
        raise TypeError(f"output is a {type(out).__name__}, not a jax.Array")
    return np.asarray(out).astype(np.float64), str(out.dtype)


def _call_context(fw, dtype: str, device: str):
    return _enable_x64(fw)(True) if dtype == "float64" else contextlib.nullcontext()


def _enable_x64(fw):
    """jax.enable_x64 exists from JAX 0.8; before it, jax.experimental.enable_x64 (removed in 0.10)."""
    if hasattr(fw.jax, "enable_x64"):
        return fw.jax.enable_x64
    import importlib

    return importlib.import_module("jax.experimental").enable_x64


def _settings(fw) -> dict:
    cfg = fw.jax.config
    return {
        "jax_enable_x64 (default)": bool(cfg.jax_enable_x64),
        "jax_default_matmul_precision": str(cfg.jax_default_matmul_precision),
        "jax.default_backend": fw.jax.default_backend(),
    }


def _versions(fw) -> dict:
    versions = {"jax": fw.jax.__version__}
    try:
        import jaxlib

        versions["jaxlib"] = jaxlib.__version__
    except ImportError:
        pass
    if fw.optax is not None:
        versions["optax"] = fw.optax.__version__
    return versions


# Configuration a call could change that later checks depend on (read as set globally, and as in effect
# inside klconf's own `enable_x64` context for the flags a context can override).
_CONFIG = (
    "jax_enable_x64",
    "jax_default_device",
    "jax_default_matmul_precision",
    "jax_debug_nans",
    "jax_debug_infs",
    "jax_disable_jit",
    "jax_numpy_rank_promotion",
    "jax_numpy_dtype_promotion",
    "jax_default_prng_impl",
    "jax_enable_checks",
)
_IN_EFFECT = ("jax_enable_x64", "jax_default_device")


def _state(fw) -> dict:
    config = fw.jax.config
    holders = getattr(config, "_value_holders", {})
    out = {}
    for name in _CONFIG:
        get_global = getattr(holders.get(name), "get_global", None)
        try:
            out[f"jax.config.{name}"] = get_global() if get_global is not None else getattr(config, name)
        except (AttributeError, KeyError):  # an option this release does not have
            continue
        if name in _IN_EFFECT:
            out[f"jax.config.{name} (in effect)"] = getattr(config, name)
    return out


def _restore(fw, changed: dict) -> None:
    for key, value in changed.items():
        name = key.removeprefix("jax.config.")
        if not name.endswith(" (in effect)"):
            fw.jax.config.update(name, value)
        elif f"jax.config.{name.removesuffix(' (in effect)')}" not in changed:
            # the global value held: an override left open inside klconf's context, set back for this thread
            fw.jax.config._value_holders[name.removesuffix(" (in effect)")].set_local(value)


def _gradient(fw, fn, args, index):
    """The gradient through jax.jit: eager jax.grad compiles each primitive again for every new shape (about
    0.35 s a call), a jitted one traces and compiles the whole function once (about 0.02 s). An API that
    cannot be traced (it reads concrete values) gets eager jax.grad, so its outcome is the one eager
    code shows."""
    return _jitted_grad(fw, fn, args, index)


def _gradients(fw, fn, args, indices):
    """Both gradients from one jitted program (`_gradient`): one trace and one compile per shape for both."""
    return tuple(_jitted_grad(fw, fn, args, tuple(indices)))


def _jitted_grad(fw, fn, args, argnums):
    def total(*inputs):
        return fn(*inputs).sum()

    key = (fn, argnums)  # klconf passes one function per API call and options (gradients._differentiated),
    jitted = _JITTED.get(key)  # so the compiled gradient of one input shape serves every case of it
    if jitted is None:
        jitted = _JITTED[key] = fw.jax.jit(fw.jax.grad(total, argnums=argnums))
        while len(_JITTED) > 256:
            _JITTED.pop(next(iter(_JITTED)))
    try:
        return jitted(*args)
    except Exception:
        return fw.jax.grad(total, argnums=argnums)(*args)


_JITTED: dict = {}  # (function, argument index or indices) -> its jitted gradient


def _snippet_native(values: str, dtype: str, device: str) -> str:
    platform = {"cpu": "cpu", "cuda": "gpu"}[device]
    return f"jax.device_put(np.asarray({values}).astype(jnp.{dtype}), jax.devices({platform!r})[0])"


def _snippet_prelude(dtype: str, device: str) -> str:
    return (
        'jax.config.update("jax_enable_x64", True)  # klconf runs float64 checks with x64' if dtype == "float64" else ""
    )


SNIPPET = Snippet(  # mirrors _call_context, _to_native and _to_numpy
    imports="import jax\nimport jax.numpy as jnp\nimport jax.scipy.special",
    prelude=_snippet_prelude,
    native=_snippet_native,
    to_numpy="np.asarray({result}).astype(np.float64)",
)

BINDING = Binding(
    name="jax",
    modules=("jax",),
    load=_load,
    version=_versions,
    devices=_devices,
    to_native=_to_native,
    to_numpy=_to_numpy,
    settings=_settings,
    call_context=_call_context,
    check_settings=lambda fw, dtype, device: {"jax_enable_x64": dtype == "float64"},
    state=_state,
    restore=_restore,
    mutable_inputs=False,
    gradient=_gradient,
    gradients=_gradients,
    snippet=SNIPPET,
)


def _elementwise(name: str, formula: str) -> Api:
    return Api(
        name=f"jax.scipy.special.{name}",
        framework="jax",
        call=lambda fw, p, q, o, w: getattr(fw.special, name)(p, q),
        convention=lambda o: Convention(
            arguments=("p", "q"),
            p_argument="p",
            input_space=("prob", "prob"),
            reduction="none",
            class_axis=None,
            elementwise=formula,
        ),
        differentiable=("p", "q"),
        doc_url=f"https://docs.jax.dev/en/latest/_autosummary/jax.scipy.special.{name}.html",
        snippet=f"jax.scipy.special.{name}({{a}}, {{b}})",
    )


def _optax(
    name: str,
    target_space: str,
    formula: str = "p*log(p/q)",
    attribute: str | None = None,
    notes: str = "",
    since: str = "",
) -> Api:
    """optax losses take (log_predictions = log Q, targets = P) and sum over axis -1."""
    path = (attribute or name).split(".")

    def call(fw, log_q, p, o, w):
        fn = fw.optax
        for part in path:
            fn = getattr(fn, part)
        return fn(log_q, p)

    p_name = "log_targets" if target_space == "log_prob" else "targets"
    return Api(
        name=f"optax.{name}",
        framework="jax",
        call=call,
        convention=lambda o: Convention(
            arguments=("log_predictions", p_name),
            p_argument=p_name,
            input_space=("log_prob", target_space),
            reduction="per_row",
            class_axis=-1,
            elementwise=formula,
        ),
        requires=("optax",),
        snippet=f"import optax\noptax.{attribute or name}({{a}}, {{b}})",
        differentiable=("log_predictions", p_name),
        notes=notes,
        since=(("optax", since),) if since else (),
        doc_url="https://optax.readthedocs.io/en/latest/api/losses.html",
    )


def _softmax_cross_entropy_minus_entropy(fw, logits, labels, o, w):
    return fw.optax.softmax_cross_entropy(logits, labels) - fw.special.entr(labels).sum(axis=-1)


APIS = [
    _elementwise("rel_entr", "p*log(p/q)"),
    _elementwise("kl_div", "p*log(p/q)-p+q"),
    _optax("kl_divergence", "prob"),
    _optax("losses.kl_divergence_with_log_targets", "log_prob"),
    _optax("generalized_kl_divergence", "prob", "p*log(p/q)-p+q", since="0.2.7"),  # measured: absent from 0.2.6
    _optax("convex_kl_divergence", "prob", "p*log(p/q)-p+q", notes="Deprecated alias of generalized_kl_divergence."),
    Api(
        name="optax.softmax_cross_entropy-entropy",
        framework="jax",
        call=_softmax_cross_entropy_minus_entropy,
        snippet="import optax\noptax.softmax_cross_entropy({a}, {b}) - jax.scipy.special.entr({b}).sum(axis=-1)",
        convention=lambda o: Convention(
            arguments=("logits", "labels"),
            p_argument="labels",
            input_space=("logits", "prob"),
            reduction="per_row",
            class_axis=-1,
        ),
        requires=("optax",),
        differentiable=("logits",),
        identity="cross_entropy",
        notes="optax.softmax_cross_entropy(logits_q, p) minus jax.scipy.special.entr(p) summed over classes.",
        doc_url="https://optax.readthedocs.io/en/latest/api/losses.html",
    ),
]

# How a ported equivalent is written in this framework (conformance/porting/vocabulary.py)
VOCABULARY = Vocabulary(
    framework="jax",
    imports=("import jax", "import jax.numpy as jnp", "import jax.scipy.special"),
    # device_put, not jnp.asarray: from JAX 0.10 jnp.asarray compiles a program per shape and dtype to
    # stage a NumPy array, which would double the compiles of a run over the corpus (and of a user's loop)
    native="jax.device_put({x})",
    to_numpy="np.asarray({x})",
    scope="with jax.enable_x64(dtype == np.float64):  # JAX computes in float64 only with x64",
    log="jnp.log({x})",
    xlogy="jax.scipy.special.xlogy({x}, {y})",
    where="jnp.where({c}, {a}, {b})",
    constant="{value}",
    clip="jnp.clip({x}, {lo}, {hi})",
    sum="jnp.sum({x}, axis={axis})",
    sum_keep="jnp.sum({x}, axis={axis}, keepdims=True)",
    total="jnp.sum({x})",
    compiled="jax.jit({function}, static_argnames={static})",
)
