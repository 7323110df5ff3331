"""Eliminating candidates probe by probe, and reading fields off the survivors.

A candidate survives a probe when the judge (the same tolerances as the value checks)
passes the API's output against the candidate's oracle prediction. A field is reported
only when every survivor agrees on it; otherwise it is `unknown`, and the evidence says
whether every candidate failed (naming the probe that broke the last of them and the
closest miss) or the probes could not separate the survivors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .. import judge
from ..dtypes import FORMATS
from .candidates import UNKNOWN, Candidate, hashable
from .probes import Observation, Probe, show


@dataclass
class Verdict:
    candidate: Candidate
    probe: Probe
    fits: bool
    predicted: np.ndarray | None
    score: float  # how badly it missed: error / tolerance, inf for a wrong shape or special value


@dataclass
class ProbeRecord:
    probe: Probe
    observation: Observation
    alive_before: int
    alive_after: int


@dataclass
class Elimination:
    survivors: list[Candidate]
    records: list[ProbeRecord] = field(default_factory=list)
    killed_by: dict[Candidate, Verdict] = field(default_factory=dict)  # the probe each loser failed
    broken_by: Verdict | None = None  # the closest miss on the probe that left no survivor

    @property
    def failed(self) -> bool:
        return not self.survivors

    @property
    def informative(self) -> bool:
        """At least one probe got an answer (a call that raised tells nothing)."""
        return any(r.observation.error is None for r in self.records)


def judge_candidate(c: Candidate, probe: Probe, obs: Observation, device: str, factor: float) -> Verdict:
    made = c.predict(probe.args, probe.weights)
    if made is None:
        return Verdict(c, probe, False, None, np.inf)
    exp, moved_axis = made
    observed = obs.value
    if observed is None:  # the call raised: no candidate predicts an exception
        return Verdict(c, probe, False, None, np.inf)
    if moved_axis is not None and observed.ndim == probe.args[0].ndim:
        observed = np.moveaxis(observed, moved_axis, -1)
    j = judge.judge(exp, observed, judged_dtype(probe.dtype, obs.dtype), device, factor)
    score = j.headroom if j.headroom is not None and j.kind in (None, "value") else np.inf
    if j.verdict == "pass":
        score = j.headroom or 0.0
    return Verdict(c, probe, j.verdict == "pass", exp.value, float(score))


def judged_dtype(fed: str, returned: str | None) -> str:
    """An output narrower than its inputs (float32 from float64) can be no more exact than its format."""
    if returned in FORMATS and FORMATS[returned].mantissa_bits < FORMATS[fed].mantissa_bits:
        return returned
    return fed


def eliminate(
    candidates: list[Candidate],
    probes: list[Probe],
    box: Callable[[Probe], Observation],
    device: str,
    factor: float = 1.0,
) -> Elimination:
    alive = list(candidates)
    result = Elimination(alive)
    for probe in probes:
        obs = box(probe)
        if obs.error is not None:
            result.records.append(ProbeRecord(probe, obs, len(alive), len(alive)))
            continue
        verdicts = [judge_candidate(c, probe, obs, device, factor) for c in alive]
        survivors = [v.candidate for v in verdicts if v.fits]
        result.records.append(ProbeRecord(probe, obs, len(alive), len(survivors)))
        for v in verdicts:
            if not v.fits:
                result.killed_by[v.candidate] = v
        if not survivors:
            result.broken_by = min(verdicts, key=lambda v: v.score)
            result.survivors = []
            return result
        alive = survivors
    result.survivors = alive
    return result


def read_fields(
    names: tuple[str, ...],
    elim: Elimination,
    fields_of: Callable[[Candidate], dict],
    describe: Callable[[Candidate], str],
) -> tuple[dict, dict]:
    """(values, evidence) for `names` from the survivors; `unknown` where they are not unanimous."""
    values, evidence = {}, {}
    if elim.failed:
        text = broken_text(elim, describe)
        for name in names:
            values[name], evidence[name] = UNKNOWN, text
        return values, evidence
    if not elim.informative:
        text = "no probe could be run: " + "; ".join(
            f"{r.probe.name} raised {r.observation.error}" for r in elim.records[:4]
        )
        return {name: UNKNOWN for name in names}, {name: text for name in names}
    survivor_fields = [fields_of(c) for c in elim.survivors]
    for name in names:
        seen = {hashable(f[name]): f[name] for f in survivor_fields}
        if len(seen) == 1:
            values[name] = next(iter(seen.values()))
            evidence[name] = _support(name, values[name], elim, fields_of)
        else:
            values[name] = UNKNOWN
            tried = ", ".join(r.probe.name for r in elim.records)
            evidence[name] = (
                f"undetermined: {len(elim.survivors)} candidates fit every probe ({tried}) but differ "
                f"here: {', '.join(_text(v) for v in seen.values())}"
            )
    return values, evidence


def broken_text(elim: Elimination, describe: Callable[[Candidate], str]) -> str:
    v = elim.broken_by
    assert v is not None, "broken_text describes an elimination that every candidate failed"
    obs = next(r.observation for r in elim.records if r.probe is v.probe)
    before = next(r.alive_before for r in elim.records if r.probe is v.probe)
    return (
        f"no candidate fits: probe {v.probe.describe()} broke the last {before}; observed {show(obs.value)}, "
        f"closest candidate [{describe(v.candidate)}] predicted {show(v.predicted)}"
    )


def _support(name: str, value, elim: Elimination, fields_of) -> str:
    """Which probes ruled out the other values of this field, with one losing prediction each."""
    observed = {r.probe: r.observation for r in elim.records}
    rivals: dict = {}
    for loser, verdict in elim.killed_by.items():
        other = fields_of(loser)[name]
        if hashable(other) == hashable(value):
            continue
        best = rivals.get(hashable(other))
        if best is None or _later(verdict, best, elim) or (verdict.probe is best.probe and verdict.score < best.score):
            rivals[hashable(other)] = verdict
    probes_run = [r.probe.name for r in elim.records if r.observation.error is None]
    skipped = [f"{r.probe.name} raised {r.observation.error}" for r in elim.records if r.observation.error]
    parts = [f"{_text(value)} fits {', '.join(probes_run)}"]
    for verdict in list(rivals.values())[:6]:
        parts.append(
            f"{_text(fields_of(verdict.candidate)[name])} ruled out by {verdict.probe.name}: "
            f"predicted {show(verdict.predicted)}, observed {show(observed[verdict.probe].value)}"
        )
    if len(rivals) > 6:
        parts.append(f"{len(rivals) - 6} more values ruled out")
    if skipped:
        parts.append("no information from " + "; ".join(skipped))
    return "; ".join(parts)


def _later(a: Verdict, b: Verdict, elim: Elimination) -> bool:
    order = {r.probe: i for i, r in enumerate(elim.records)}
    return order[a.probe] > order[b.probe]


def _text(value) -> str:
    if isinstance(value, dict):
        return "(" + ", ".join(f"{k}: {v}" for k, v in value.items()) + ")"
    return str(value)
