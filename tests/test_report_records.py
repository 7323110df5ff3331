"""Builders shared by the report, merge and diff tests: records and results files made directly,
so that these tests need no framework."""

from __future__ import annotations

import json
from pathlib import Path

from conformance.kinds import check_id
from conformance.results import Record, Writer, jsonable, run_header

HOSTILE = "<script>alert(1)</script>"
HOSTILE_CLOSE = "</script><script>window.__xss=1</script><!--"
HOSTILE_IMG = '<img src=x onerror="window.__xss=2">'
SCRIPT_DATA = "window.__xss"


def record(
    case: str = "canonical-2x3",
    api: str = "torch.nn.functional.kl_div",
    framework: str = "torch",
    device: str = "cpu",
    dtype: str = "float32",
    options: dict | None = None,
    verdict: str = "pass",
    **fields,
) -> Record:
    options = {"reduction": "sum"} if options is None else options
    label = ",".join(f"{k}={v}" for k, v in options.items())
    values = (
        dict(
            expected=0.48349248,
            observed=0.48349250,
            abs_error=2e-8,
            rel_error=4e-8,
            ulp_error=0.7,
            tolerance=1e-6,
            headroom=0.02,
        )
        if verdict == "pass"
        else {}
    )
    values.update(fields)
    return Record(
        check_id=check_id(case, api, label, device, dtype),
        case_id=case,
        case_hash="h" + case[:8],
        api=api,
        framework=framework,
        device=device,
        dtype=dtype,
        options=options,
        verdict=verdict,
        **values,
    )


def failing(
    case: str = "canonical-2x3",
    api: str = "torch.nn.functional.kl_div",
    framework: str = "torch",
    dtype: str = "float32",
    **fields,
) -> Record:
    values = dict(
        kind="value",
        expected=0.48349248,
        observed=0.48397597,
        abs_error=4.8e-4,
        rel_error=1e-3,
        ulp_error=8.1e3,
        tolerance=1e-6,
        headroom=480.0,
        message="1 of 1 values differ; at the scalar output: expected 0.48349248, observed 0.483975972",
        diagnosis="no single change to the declared convention explains the observed values",
        convention="(input=Q as log_prob, target=P as prob), p*log(p/q), reduction=sum",
        extra={"repro": "import numpy as np\nprint('observed:', 0.48397597)\n"},
    )
    values.update(fields)
    return record(case, api, framework, dtype=dtype, verdict="fail", **values)


def convention(
    api: str = "torch.nn.functional.kl_div",
    framework: str = "torch",
    options: dict | None = None,
    inferred: dict | None = None,
    declared: dict | None = None,
    device: str = "cpu",
    dtype: str = "float64",
) -> Record:
    declared = declared or {
        "p_argument": "target",
        "input_space": ["log_prob", "prob"],
        "reduction": "sum",
        "batch_divisor_1d": "n/a",
        "zero_p": "0",
        "zero_both": "nan",
        "zero_q": "inf",
        "clip_epsilon": None,
        "elementwise": "p*log(p/q)",
    }
    inferred = dict(
        declared,
        **(inferred or {}),
        output_dtype={"float32": "float32", "float64": "float64"},
        accumulation={"float16": "higher"},
    )
    disagreements = [f for f in declared if inferred.get(f) != declared[f]]
    return record(
        "convention-probes",
        api,
        framework,
        device,
        dtype,
        {"reduction": "sum"} if options is None else options,
        "fail" if disagreements else "pass",
        check="convention",
        message="; ".join(f"{f}: declared {declared[f]}, inferred {inferred[f]}" for f in disagreements),
        extra={
            "inferred": inferred,
            "declared": declared,
            "disagreements": disagreements,
            "evidence": {f: f"probe 2d[3x4] decides {f}" for f in inferred},
        },
    )


def framework_event(name: str = "torch", version: str = "2.13.0+cpu", **settings) -> dict:
    return {
        "type": "framework",
        "name": name,
        "versions": {name: version},
        "devices": ["cpu"],
        "settings": settings or {"torch.get_num_threads": 2, "torch.backends.cuda.matmul.allow_tf32": False},
    }


def write_results(
    path: Path, records, header: dict | None = None, frameworks=(), end: bool = True, torn: bool = False
) -> Path:
    """A results file as klconf run writes it; `torn` cuts the last record mid-line, `end=False` drops the footer."""
    path = Path(path)
    records = list(records)
    counts: dict[str, int] = {}
    with Writer(path) as writer:
        writer.write(jsonable(header or run_header(argv=["klconf", "run"], corpus_hash="c0ffee")))
        for event in frameworks:
            writer.write(jsonable(event))
        for r in records[:-1] if torn else records:
            writer.write(r.to_json())
            counts[r.verdict] = counts.get(r.verdict, 0) + 1
        if end and not torn:
            writer.write(
                {
                    "type": "end",
                    "exitstatus": 1 if any(r.failed for r in records) else 0,
                    "counts": counts,
                    "interrupted": False,
                }
            )
    if torn:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(records[-1].to_json())[:40])
    return path
