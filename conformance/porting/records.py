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

from collections.abc import Iterable
from dataclasses import dataclass, field

from .. import isolation
from ..cases import Case, corpus_hash
from ..frameworks import Api, Unavailable, binding
from ..kinds import check_id, start_record
from ..results import Record
from .port import port, targets_for, unavailable
from .verify import DTYPES

CHECK = "porting"
DTYPE_LABEL = "+".join(DTYPES)


def case_id(target: str) -> str:
    """The record's row in the report's matrix: one per target framework."""
    return f"porting-to-{target}"


@dataclass(frozen=True)
class PortingCheck:
    """One API call (with options) ported to one target framework and verified on the corpus (CPU)."""

    api: Api
    options_items: tuple
    target: str
    cases: tuple = field(compare=False, repr=False)
    device: str = "cpu"

    @property
    def options(self) -> dict:
        return dict(self.options_items)

    @property
    def dtype(self) -> str:
        return DTYPE_LABEL

    @property
    def id(self) -> str:
        return check_id(
            case_id(self.target), self.api.name, self.api.option_label(self.options), self.device, DTYPE_LABEL
        )

    def record(self) -> Record:
        """The check's record before it runs (also what a crash of its process is recorded as)."""
        return start_record(
            self,
            CHECK,
            case_id=case_id(self.target),
            case_hash=corpus_hash(list(self.cases)),
            tags=["porting"],
            extra={"target_framework": self.target},
        )


def plan(apis: Iterable[Api], frameworks: Iterable[str], cases: Iterable[Case]) -> list[PortingCheck]:
    """Every API call ported to every other selected framework (plug-in APIs to every selected one)."""
    frameworks, cases = list(frameworks), tuple(cases)
    return [
        PortingCheck(api, tuple(options.items()), target, cases)
        for api in apis
        for options in api.options
        for target in targets_for(api, frameworks)
    ]


def run_porting_check(check: PortingCheck) -> Record:
    rec = check.record()
    with isolation.checked(rec):  # an API's exception of any kind, a hang, or a bug in klconf itself
        _fill(rec, check.api, check.options, check.target, list(check.cases), check.device)
    return rec


def porting_record(api: Api, options: dict, target: str, cases: list[Case], device: str = "cpu") -> Record:
    return run_porting_check(PortingCheck(api, tuple(options.items()), target, tuple(cases), device))


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
        skipped = result.verification.not_applicable()
        why = f": {skipped[0]['case']}: {skipped[0]['reason']}{' ...' if len(skipped) > 1 else ''}" if skipped else ""
        rec.message = f"no case of the corpus applies to this call{why}"
        return
    differing = result.differs_on
    rec.message = (
        f"the {target} equivalent differs on {len(differing)} case(s) and is verified on "
        f"{result.verified_cases}: "
        + "; ".join(f"{e['case']}: {e['reason']}" for e in differing[:3])
        + (" ..." if len(differing) > 3 else "")
    )
