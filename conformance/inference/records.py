"""One convention check as a results Record: inferred against declared, with the evidence.

The record's `extra` is the contract the HTML report reads:
    {"inferred": {field: value}, "declared": {field: value},
     "evidence": {field: text}, "disagreements": [field, ...]}
with the field names of `candidates.FIELDS`. Declared dtype fields are null: adapters do
not declare them, so they never disagree.
"""
from __future__ import annotations

import time
import traceback

from ..frameworks import Api, Unavailable, binding
from ..results import Record
from ..runner import check_id
from . import compare, infer, probes_hash, structural_dtype

CASE_ID = "conventions"


def convention_record(api: Api, options: dict, device: str) -> Record:
    dtype = structural_dtype(api)
    rec = Record(
        check_id=check_id(CASE_ID, api.name, api.option_label(options), device, dtype), case_id=CASE_ID,
        case_hash=probes_hash(), api=api.name, framework=api.framework, device=device, dtype=dtype,
        options=dict(options), verdict="skip", check="convention", tags=["conventions"],
    )
    started = time.perf_counter()
    try:
        _fill(rec, api, options, device)
    except Exception as exc:  # a bug in klconf itself: recorded, and the run goes on
        rec.verdict, rec.kind = "error", "internal"
        rec.message = f"klconf internal error: {type(exc).__name__}: {exc}\n{traceback.format_exc()[-3000:]}"
    finally:
        rec.duration_s = time.perf_counter() - started
    return rec


def _fill(rec: Record, api: Api, options: dict, device: str) -> None:
    b = binding(api.framework)
    missing = b.available() or api.missing()
    if missing:
        rec.reason = missing
        return
    if device not in api.devices:
        rec.verdict, rec.reason = "unsupported", f"{api.name} does not run on {device}"
        return
    try:
        fw = b.handle()
    except Unavailable as exc:
        rec.reason = str(exc)
        return
    if device not in b.devices(fw):
        rec.reason = f"{api.framework} sees no {device} device"
        return
    rec.framework_version = b.version(fw)
    rec.convention = api.convention(options).describe()
    try:
        inference = infer(api, options, device)
    except Unavailable as exc:
        rec.reason = str(exc)
        return
    comparison = compare(inference, api, options)  # the declaration is read only now
    rec.verdict = "pass" if not comparison.disagreements else "fail"
    rec.kind = "convention" if comparison.disagreements else None
    rec.message = comparison.message
    rec.extra = {"inferred": inference.fields, "declared": comparison.declared, "evidence": inference.evidence,
                 "disagreements": comparison.disagreements}
