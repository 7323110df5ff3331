"""Several results files read as one body of evidence.

Reports, diffs, merges and JUnit output all start here: each file is read (and checked
against the results schema by sampling), its completeness judged, and the records of all
files combined, the first occurrence of a check id winning and every later one listed as a
duplicate. `load` keeps every record; `scan` streams them to a callback and keeps only the
check ids (the HTML report of millions of checks reads this way). Nothing here imports a
framework.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..results import VERDICTS, Record, Results, read, stream

PROBLEMS_SHOWN = 20  # per source, in banners and messages


@dataclass
class Source:
    """One results file as read."""

    path: str
    results: Results

    @property
    def header(self) -> dict:
        return self.results.header

    @property
    def run_id(self) -> str:
        return str(self.header.get("run_id", "")) or self.path

    @property
    def torn(self) -> bool:
        """The last line was cut off mid-write (the run was killed while writing)."""
        return any("torn last line" in p for p in self.results.problems)

    @property
    def incomplete_reasons(self) -> list[str]:
        """Why this file does not hold a whole run; empty when it does."""
        reasons = []
        end = self.results.end
        if end is None:
            reasons.append("no end event: the run was interrupted or is still running")
        elif end.get("interrupted"):
            reasons.append("the run was interrupted (end event says so)")
        if end is not None and end.get("not_run"):
            reasons.append(
                f"{len(end['not_run'])} of {end.get('planned', '?')} planned checks never ran "
                "(listed in the end event's not_run)"
            )
        if end is not None:
            for shard in end.get("incomplete_shards", ()):
                reasons.append(f"merged from an incomplete shard: {shard}")
        if self.torn:
            reasons.append("the last line is torn (cut off mid-write)")
        if not self.header:
            reasons.append("no run header")
        return reasons

    @property
    def shard_headers(self) -> list[dict]:
        """The machine headers behind this file: its own, or its shards' for a merged file."""
        merged = self.header.get("merged_from")
        if merged:
            return [dict(entry.get("header", {}), source=entry.get("source", "")) for entry in merged]
        return [dict(self.header, source=self.path)] if self.header else []


@dataclass
class Duplicate:
    check_id: str
    first: str  # source path holding the record kept
    second: str  # source path holding the one dropped
    first_verdict: str
    second_verdict: str


@dataclass
class RunSet:
    sources: list[Source]
    records: list[Record] = field(default_factory=list)
    origin: list[int] = field(default_factory=list)  # per record: index of its source
    duplicates: list[Duplicate] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return all(not s.incomplete_reasons for s in self.sources)

    def framework_events(self) -> list[tuple[Source, dict]]:
        return [(s, ev) for s in self.sources for ev in s.results.framework_events]

    def by_id(self) -> dict[str, Record]:
        return {r.check_id: r for r in self.records}

    def verdicts(self) -> list[str]:
        """Known verdicts in their canonical order, then any others present, alphabetically."""
        present = {r.verdict for r in self.records}
        return [v for v in VERDICTS if v in present] + sorted(present - set(VERDICTS))

    def problems(self) -> list[str]:
        out = []
        for s in self.sources:
            shown = s.results.problems[:PROBLEMS_SHOWN]
            out += [f"{s.path}: {p}" for p in shown]
            if len(s.results.problems) > len(shown):
                out.append(f"{s.path}: ... and {len(s.results.problems) - len(shown)} more problem(s)")
        return out


def load(paths: Iterable[Path | str], validate: str = "sample") -> RunSet:
    """Read every file; combine their records (first occurrence of a check id wins)."""
    sources = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no such results file: {path}")
        sources.append(Source(str(path), read(path, validate=validate)))
    return combine(sources)


def combine(sources: list[Source]) -> RunSet:
    runset = RunSet(sources)
    seen: dict[str, tuple[int, Record]] = {}
    for index, source in enumerate(sources):
        for record in source.results.records:
            first = seen.get(record.check_id)
            if first is not None:
                runset.duplicates.append(
                    Duplicate(record.check_id, sources[first[0]].path, source.path, first[1].verdict, record.verdict)
                )
                continue
            seen[record.check_id] = (index, record)
            runset.records.append(record)
            runset.origin.append(index)
    return runset


def scan(paths: Iterable[Path | str], on_check: Callable[[dict], None], validate: str = "sample") -> RunSet:
    """Stream every file's check events to `on_check` (first occurrence of a check id only, as `load`
    keeps); the RunSet returned has the sources and duplicates but no records."""
    files = [Path(p) for p in paths]
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"no such results file: {path}")
    runset = RunSet([])
    seen: dict[str, tuple[int, str]] = {}  # check id -> (source index, verdict)

    for index, path in enumerate(files):
        source = Source(str(path), Results(source=str(path)))
        runset.sources.append(source)

        def first_only(event: dict, index: int = index, source: Source = source) -> None:
            check_id, verdict = event["check_id"], event["verdict"]
            first = seen.get(check_id)
            if first is not None:
                runset.duplicates.append(
                    Duplicate(check_id, runset.sources[first[0]].path, source.path, first[1], verdict)
                )
                return
            seen[check_id] = (index, verdict)
            on_check(event)

        stream(path, first_only, validate, into=source.results)
    return runset
