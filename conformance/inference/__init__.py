"""Convention discovery: which convention does an API call actually use?

`infer(api, options, device)` treats the call as a black box (`Api.call` through its
binding, plus the argument names of its signature) and decides, from outputs alone:

1. structure (p_argument, input_space, elementwise, reduction, class axis, divisors,
   normalisation) on probes of several shapes whose values no clip can touch;
2. zeros and clipping: epsilon measured by bisection on one tiny q, then every zero
   convention, unclipped, against the clip at that epsilon, on one probe per zero
   situation and a probe of tiny values and values above 1;
3. dtypes: the output dtype for each dtype the adapter feeds, and whether float16 and
   bfloat16 terms are accumulated in a wider format.

Each phase keeps the candidates whose oracle predictions the judge passes; a field is
reported only when every survivor agrees, and is `unknown` otherwise, with the evidence.
The declared convention (`Api.convention`) is read only afterwards, by `compare`.
Results are cached per process: the same probes serve every API, so the oracle's caches
make every inference after the first cheap.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import numpy as np

from .. import convention_fields
from ..conventions import Convention
from ..dtypes import FORMATS
from ..frameworks import Api, Unavailable, binding
from . import accumulation, probes
from .candidates import (
    DTYPE_FIELDS,
    FIELDS,
    NA,
    STRUCTURAL,
    UNKNOWN,
    ZEROS,
    Candidate,
    canonical,
    declared_fields,
    structural_candidates,
    zero_variants,
)
from .elimination import Elimination, eliminate, judge_candidate, read_fields
from .probes import BlackBox, Layout

__all__ = ["FIELDS", "UNKNOWN", "Inference", "Comparison", "infer", "compare", "describe", "probes_hash"]


@dataclass
class Inference:
    api: str
    framework: str
    options: dict
    device: str
    dtype: str  # the dtype of the structural, zero and clip probes
    arguments: tuple[str, str]
    fields: dict
    evidence: dict
    final: Candidate | None  # the one full convention that fits every probe, if there is one
    calls: int = 0
    seconds: float = 0.0
    weights_fed: bool = False

    def convention(self) -> Convention | None:
        """The inferred convention as a `Convention`, when structure and zeros are all known. (A
        Convention's mean_weighted always divides by the weights' sum: the 'batch' divisor, which
        leaves one 1-D row undivided, is kept only in `final` and the fields.)"""
        if self.final is None or any(self.fields[f] == UNKNOWN for f in STRUCTURAL + ZEROS):
            return None
        return self.final.convention(self.arguments)


@dataclass
class Comparison:
    declared: dict
    disagreements: list[str]
    message: str


_CACHE: dict[tuple, Inference] = {}


def infer(api: Api, options: dict, device: str = "cpu", *, dtypes: bool = True) -> Inference:
    """The inferred conventions of one API call (cached per process). Raises Unavailable when the
    framework, a module it requires or the device is missing.

    With `dtypes=False` the third phase is left out and the dtype fields read `unknown`: what a caller that
    reads only the structure and zeros needs (porting's choice of a target's own KL function), without a
    call in every dtype the adapter feeds. A full inference already made serves it."""
    key = (api.name, api.framework, id(api.call), repr(sorted(options.items(), key=lambda kv: kv[0])), device, True)
    hit = _CACHE.get(key)
    if hit is None and not dtypes:
        key = key[:-1] + (False,)
        hit = _CACHE.get(key)
    if hit is None:
        b = binding(api.framework)
        missing = b.available() or api.missing()
        if missing:
            raise Unavailable(missing)
        if device not in api.devices or device not in b.devices(b.handle()):
            raise Unavailable(
                f"{api.name} does not run on {device}"
                if device not in api.devices
                else f"{api.framework} sees no {device} device"
            )
        started = time.perf_counter()
        box = BlackBox(api, options, device)
        hit = _infer(api, box, dtypes)
        hit.calls, hit.seconds = box.calls, time.perf_counter() - started
        _CACHE[key] = hit
    return hit


def structural_dtype(api: Api) -> str:
    return "float64" if "float64" in api.dtypes else api.dtypes[-1]


def _infer(api: Api, box: BlackBox, dtypes: bool = True) -> Inference:
    options, device = box.options, box.device
    weights_fed = bool(options.get("sample_weight"))
    dtype = structural_dtype(api)
    factor = api.tolerance.factor if api.tolerance else 1.0
    arguments = box.arguments

    def fields_of(c: Candidate) -> dict:
        return c.fields(arguments, weights_fed)

    def text(c: Candidate) -> str:
        return describe(c, arguments, weights_fed)

    def run(candidates, probe_list) -> Elimination:
        return eliminate(candidates, [_in(p, dtype) for p in probe_list], box, device, factor)

    values, evidence = {}, {}
    structure = run(structural_candidates(weights_fed), probes.structural(weights_fed))
    v, e = read_fields(STRUCTURAL, structure, fields_of, text)
    values.update(v), evidence.update(e)

    final = None
    if structure.failed or not structure.informative:
        for name in ZEROS:
            values[name], evidence[name] = (
                UNKNOWN,
                "not probed: the structure is unknown (" + evidence["reduction"] + ")",
            )
    else:
        base = structure.survivors[0]
        layouts = list(dict.fromkeys(_layout(c) for c in structure.survivors))
        eps, eps_text = _measure_clip(box, base, _layout(base), weights_fed, dtype, device, factor)
        # the measured epsilon, and a known one within float32's precision of it that the zero and clip-check
        # probes may prefer (1e-7 applied through float32: bisection and its tolerance cannot part them)
        epsilons = [eps] + [
            v for v in convention_fields.values("clip_epsilon") if eps is not None and v != eps and same_bound(v, eps)
        ]
        candidates = list(
            dict.fromkeys(z for s in structure.survivors for e in epsilons for z in zero_variants(s, e, weights_fed))
        )
        zero_probes = [
            p
            for lay in layouts
            for p in probes.zero_probes(lay, weights_fed) + [probes.clip_check_probe(lay, weights_fed)]
        ]
        zeros = run(candidates, zero_probes)
        if len({c.clip_epsilon for c in zeros.survivors if c.clip_epsilon is not None}) > 1:  # probes cannot part them
            zeros.survivors = [c for c in zeros.survivors if c.clip_epsilon in (None, eps)]
        v, e = read_fields(ZEROS, zeros, fields_of, text)
        e["clip_epsilon"] = f"{eps_text}; {e['clip_epsilon']}"
        values.update(v), evidence.update(e)
        final = zeros.survivors[0] if zeros.survivors else base

    if dtypes:
        _dtype_phase(api, box, final, weights_fed, values, evidence)
    else:
        for name in DTYPE_FIELDS:
            values[name], evidence[name] = UNKNOWN, "not probed: this inference reads the structure and zeros only"
    return Inference(
        api.name,
        api.framework,
        dict(options),
        device,
        dtype,
        arguments,
        values,
        evidence,
        final,
        weights_fed=weights_fed,
    )


def _in(probe: probes.Probe, dtype: str) -> probes.Probe:
    return probe if probe.dtype == dtype else probes.in_dtype(probe, dtype)


def _layout(c: Candidate) -> Layout:
    return Layout(c.p_index, c.spaces, c.class_axis)


# --------------------------------------------------------------------------- clipping


def _measure_clip(
    box, structure: Candidate, layout: Layout, weights_fed: bool, dtype: str, device: str, factor: float
) -> tuple[float | None, str]:
    """Bisection on one q value: below a clip's epsilon the output stops following q."""
    carrier = np.dtype(FORMATS[dtype].carrier)
    as_int = np.int64 if carrier.itemsize == 8 else np.int32

    def fits(x: float) -> bool | None:
        probe = _in(probes.clip_probe(layout, x, weights_fed), dtype)
        obs = box(probe)
        if obs.error is not None:
            return None
        return judge_candidate(structure, probe, obs, device, factor).fits

    smallest, top = FORMATS[dtype].smallest_normal, 0.25
    first = fits(smallest)
    if first is None:
        return None, "clip not measured: the probe with one tiny q raised"
    if first:
        return None, f"no clipping: q = {smallest:.3g} gives the unclipped value"
    if not fits(top):
        return None, f"clip not measured: q = {top} already differs from the structure's prediction"
    lo, hi = int(np.array(smallest, carrier).view(as_int)), int(np.array(top, carrier).view(as_int))
    lo, hi = _known_epsilons_bracket(fits, lo, hi, carrier, as_int)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(float(np.array(mid, as_int).view(carrier))):
            hi = mid
        else:
            lo = mid
    x_lo, x_hi = (float(np.array(b, as_int).view(carrier)) for b in (lo, hi))
    deep = _in(probes.clip_probe(layout, x_lo / 1024, weights_fed), dtype)
    deep_obs = box(deep)
    for digits in range(1, 18):
        eps = float(f"{x_hi:.{digits - 1}e}")
        if eps <= x_lo or deep_obs.error is not None:
            continue
        clipped = canonical(structure.replace(clip_epsilon=eps), weights_fed)
        if judge_candidate(clipped, deep, deep_obs, device, factor).fits:
            return eps, (
                f"clips at {eps:g}: bisection on one q value finds q = {x_lo:.17g} treated as larger, "
                f"q = {x_hi:.17g} not; q = {x_lo / 1024:.3g} gives the value of q = {eps:g}"
            )
    return x_hi, f"clips near {x_hi:.17g} (bisection), but no nearby epsilon reproduces q = {x_lo / 1024:.3g}"


def _known_epsilons_bracket(fits, lo: int, hi: int, carrier, as_int) -> tuple[int, int]:
    """The bisection's bracket (bit patterns: `lo` does not fit, `hi` fits) narrowed around the known epsilons
    (convention_fields), smallest first. The output stops following q a little below a clip's epsilon (where
    the clipped value leaves the tolerance), so for each epsilon still inside the bracket: the epsilon itself
    (if it does not fit, the clip is above it: next epsilon), then points 1, 2^12, 2^22 and 2^32 ulps below
    it until one does not fit. A clip at a known epsilon then leaves about 20 bisection steps instead of
    about 60, each an API call. Every call only moves a bound to a point of the same kind, so wherever `fits`
    is monotone the bisection ends on the very pair one over the whole range finds."""
    mantissa_bits = np.finfo(carrier).nmant
    offsets = [1] + [1 << shift for shift in (12, 22, 32) if shift < mantissa_bits]
    for known in sorted(convention_fields.values("clip_epsilon")):
        point = int(np.array(known, carrier).view(as_int))
        for x in [point] + [point - offset for offset in offsets]:
            if not (hi - lo > 1 and lo < x < hi):
                break
            if fits(float(np.array(x, as_int).view(carrier))):  # (a call that raised counts as below, as there)
                hi = x
            else:
                lo = x
                break
    return lo, hi


# --------------------------------------------------------------------------- dtypes


def _dtype_phase(api: Api, box, final: Candidate | None, weights_fed: bool, values: dict, evidence: dict) -> None:
    base = probes.structural(weights_fed)[0]
    out = {}
    for dtype in api.dtypes:
        obs = box(probes.in_dtype(base, dtype))
        out[dtype] = obs.dtype if obs.error is None else f"error ({obs.error})"
    values["output_dtype"] = out
    evidence["output_dtype"] = f"probe {base.name} fed in each of {', '.join(api.dtypes)}"

    acc, texts = {}, []
    for dtype in ("float16", "bfloat16"):
        if dtype not in api.dtypes:
            continue
        if final is None:
            acc[dtype] = UNKNOWN
            texts.append(f"{dtype}: not probed, the structure is unknown")
            continue
        pair = accumulation.probes(final, _layout(final), dtype, weights_fed)
        acc[dtype], text = accumulation.judge(final, pair, (box(pair[0]), box(pair[1])), dtype)
        texts.append(f"{dtype}: {text}")
    values["accumulation"] = acc
    evidence["accumulation"] = "; ".join(texts) if texts else "the adapter feeds neither float16 nor bfloat16"


# --------------------------------------------------------------------------- comparison and text


def compare(inference: Inference, api: Api, options: dict) -> Comparison:
    """Inferred against declared, field by field (dtype fields are not declared by adapters)."""
    conv = api.convention(options)
    if conv.clip_epsilon is not None and inference.dtype != "float64":
        from ..dtypes import round_to

        conv = conv.replace(clip_epsilon=float(round_to(np.array(conv.clip_epsilon), inference.dtype)))
    declared = declared_fields(conv, inference.weights_fed)
    disagreements = [f for f in FIELDS if f not in DTYPE_FIELDS and not same(f, inference.fields[f], declared[f])]
    if not disagreements:
        return Comparison(declared, [], "the inferred convention agrees with the declared one on every field")
    parts = [
        f"{f}: declared {_show(declared[f])}, inferred {_show(inference.fields[f])} ({inference.evidence[f]})"
        for f in disagreements
    ]
    return Comparison(
        declared,
        disagreements,
        f"inferred convention differs from the declared one in {', '.join(disagreements)}: " + "; ".join(parts),
    )


def same(name: str, a, b) -> bool:
    """Whether an inferred field value agrees with the declared one. Clip bounds agree to float32's precision
    (2**-24 relative): inference settles on the shortest epsilon that reproduces its probes, and its probes do
    not tell 1e-7 from float32(1e-7) = 1.0000000116860974e-07 (1.2e-8 apart), the bound Keras on PyTorch
    applies to float64 inputs. The value and gradient checks, judged at float64's tolerance, do."""
    if name == "clip_epsilon" and isinstance(a, float) and isinstance(b, float):
        return same_bound(a, b)
    return a == b


def same_bound(a: float, b: float) -> bool:
    """Two clip bounds within float32's precision (2**-24 relative) of each other."""
    return abs(a - b) <= 2.0**-24 * max(abs(a), abs(b))


def _show(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    return "none" if value is None else str(value)


def describe(c: Candidate, arguments, weights_fed: bool) -> str:
    f = c.fields(arguments, weights_fed)
    parts = [
        ", ".join(f"{a}={'P' if a == f['p_argument'] else 'Q'} as {s}" for a, s in f["input_space"].items()),
        f["elementwise"],
        f"reduction={f['reduction']}",
    ]
    if f["batch_divisor"] != NA:
        parts.append(f"divisor={f['batch_divisor']}")
    if f["class_axis"] is not None:
        parts.append(f"class axis {f['class_axis']}")
    if f["normalizes"]:
        parts.append("normalizes")
    if f["clip_epsilon"] is not None:
        parts.append(f"clip [{f['clip_epsilon']:g}, 1]")
    else:
        parts.append(f"zeros p:{f['zero_p']} both:{f['zero_both']} q:{f['zero_q']}")
    return ", ".join(parts)


def probes_hash() -> str:
    """Identifies the probe set (the 'case' of a convention record)."""
    h = hashlib.sha256()
    for weights in (False, True):
        for p in probes.structural(weights):
            h.update(p.key.encode())
    return h.hexdigest()[:16]
