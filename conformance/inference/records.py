"""One convention check as a results Record: inferred against declared, with the evidence.

The record's `extra` is the contract the HTML report reads:
    {"inferred": {field: value}, "declared": {field: value},
     "evidence": {field: text}, "disagreements": [field, ...]}
with the field names of `candidates.FIELDS`. Declared dtype fields are null: adapters do
not declare them, so they never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .. import isolation
from ..frameworks import Api, Unavailable, binding
from ..kinds import check_id, start_record
from ..results import Record
from . import compare, infer, probes_hash, structural_dtype

CASE_ID = "conventions"


@dataclass(frozen=True)
class ConventionCheck:
    """One API call (with options) on one device: its conventions inferred and compared with its declaration."""

    api: Api
    options_items: tuple
    device: str

    @property
    def options(self) -> dict:
        return dict(self.options_items)

    @property
    def dtype(self) -> str:
        return structural_dtype(self.api)

    @property
    def id(self) -> str:
        return check_id(CASE_ID, self.api.name, self.api.option_label(self.options), self.device, self.dtype)

    def record(self) -> Record:
        """The check's record before it runs (also what a crash of its process is recorded as)."""
        return start_record(self, "convention", case_id=CASE_ID, case_hash=probes_hash(), tags=["conventions"])


def plan(apis: Iterable[Api], devices: Iterable[str]) -> list[ConventionCheck]:
    devices = tuple(devices)
    return [
        ConventionCheck(api, tuple(options.items()), device)
        for api in apis
        for options in api.options
        for device in devices
    ]


def run_convention_check(check: ConventionCheck) -> Record:
    rec = check.record()
    with isolation.checked(rec):  # an API's exception of any kind, a hang, or a bug in klconf itself
        _fill(rec, check.api, check.options, check.device)
    return rec


def convention_record(api: Api, options: dict, device: str) -> Record:
    return run_convention_check(ConventionCheck(api, tuple(options.items()), device))


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
    rec.extra = {
        "inferred": inference.fields,
        "declared": comparison.declared,
        "evidence": inference.evidence,
        "disagreements": comparison.disagreements,
    }
