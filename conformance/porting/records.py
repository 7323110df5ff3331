"""One port as a results Record (check "porting"): the report builds its porting table from these alone.

The record's `extra` is the contract the report and the results schema read:
    {"code": snippet, "expression": one line, "verified_cases": n,
     "differs_on": [{"case": id, "reason": text, "dtypes": [...]}], "target_framework": name,
     "out_of_domain": {...}, "float16": {...}, "not_applicable": [...], "convention": text, "notes": [...], ...}
verdict pass: verified on every in-domain case it applies to (float64 and float32); fail: it differs
on one at least; skip: the source or the target framework is not installed here. The source's
inferred convention is in extra["convention"]; the record's own `convention` field is left empty,
since it names a declared convention everywhere else.
"""
from __future__ import annotations

import time
import traceback

from ..cases import Case, corpus_hash
from ..frameworks import Api, Unavailable, binding
from ..results import Record
from ..runner import check_id
from .port import port, unavailable
from .verify import DTYPES

CHECK = "porting"
DTYPE_LABEL = "+".join(DTYPES)


def case_id(target: str) -> str:
    """The record's row in the report's matrix: one per target framework."""
    return f"porting-to-{target}"


def porting_record(api: Api, options: dict, target: str, cases: list[Case], device: str = "cpu") -> Record:
    rec = Record(
        check_id=check_id(case_id(target), api.name, api.option_label(options), device, DTYPE_LABEL),
        case_id=case_id(target), case_hash=corpus_hash(cases), api=api.name, framework=api.framework,
        device=device, dtype=DTYPE_LABEL, options=dict(options), verdict="skip", check=CHECK,
        tags=["porting"], extra={"target_framework": target},
    )
    started = time.perf_counter()
    try:
        _fill(rec, api, options, target, cases, device)
    except Exception as exc:  # a bug in klconf itself: recorded, and the run goes on
        rec.verdict, rec.kind = "error", "internal"
        rec.message = f"klconf internal error: {type(exc).__name__}: {exc}\n{traceback.format_exc()[-3000:]}"
    finally:
        rec.duration_s = time.perf_counter() - started
    return rec


def _fill(rec: Record, api: Api, options: dict, target: str, cases: list[Case], device: str) -> None:
    missing = unavailable(api, target)
    if missing:
        rec.reason = f"{missing}: a port from {api.framework} to {target} needs both installed"
        return
    try:
        result = port(api, options, target, cases, device)
    except Unavailable as exc:
        rec.reason = f"{exc}: a port from {api.framework} to {target} needs both installed"
        return
    b = binding(api.framework)
    rec.framework_version = b.version(b.handle())
    target_binding = binding(target)
    data = result.to_json()
    rec.extra.update({k: v for k, v in data.items() if k not in ("source", "options", "seconds")})
    rec.extra["target_version"] = target_binding.version(target_binding.handle())
    rec.verdict = result.verdict
    if result.verdict == "pass":
        rec.message = f"verified on {result.verified_cases} cases ({DTYPE_LABEL})"
        return
    rec.kind = "porting"
    if not result.verified_cases and not result.differs_on:
        rec.message = "no case of the corpus applies to this call"
        return
    differing = result.differs_on
    rec.message = (f"the {target} equivalent differs on {len(differing)} case(s) and is verified on "
                   f"{result.verified_cases}: " + "; ".join(f"{e['case']}: {e['reason']}" for e in differing[:3])
                   + (" ..." if len(differing) > 3 else ""))
