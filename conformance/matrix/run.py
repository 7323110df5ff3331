"""Running the suite in each release's environment and keeping what each run gave.

Each release's results go to OUT/<family>-<version>/results.jsonl with a `release.json` beside
them (the pins, the install outcome, the wall times), and OUT/summary.json holds one entry per
release tried, installed or not, so that nothing tried is silently dropped. The oracle's disk cache
(KLCONF_CACHE_DIR) is shared by every release, so a release costs its framework's calls; `cold`
runs one release against an empty cache to measure what the oracle costs on its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from .envs import Installed
from .releases import Release

DEFAULT_OUT = Path("reports") / "matrix"
DEFAULT_KEYWORD = "not large-vocab"  # the 32k-256k-class cases cost most of a run and test no version behaviour
DEFAULT_DTYPES = ("float32", "float64")


class Installer(Protocol):
    def install(self, release: Release) -> Installed: ...


@dataclass
class Selection:
    """Which checks each release runs: the `klconf run` options passed through."""

    checks: tuple[str, ...] = ()  # empty: the release family's default kinds
    dtypes: tuple[str, ...] = DEFAULT_DTYPES
    keyword: str | None = None  # None: the release family's focus and DEFAULT_KEYWORD; "": every check
    workers: str = "1"
    timeout: float | None = None

    def arguments(self, release: Release) -> list[str]:
        argv = ["--framework", release.framework]
        for kind in self.checks or release.checks:
            argv += ["--check", kind]
        for dtype in self.dtypes:
            argv += ["--dtype", dtype]
        keyword = self.keyword
        if keyword is None:
            keyword = " and ".join(f"({k})" for k in (release.focus, DEFAULT_KEYWORD) if k)
        if keyword:
            argv += ["-k", keyword]
        if self.timeout is not None:
            argv += ["--timeout", str(self.timeout)]
        return argv + ["-n", str(self.workers), "--no-report", "--no-progress"]


@dataclass
class Outcome:
    """One release tried: its install, and its run if it installed."""

    label: str
    family: str
    version: str
    framework: str
    requirements: list[str]
    installed: bool
    install: dict
    cache: str = "warm"
    wall_s: float | None = None
    exit_code: int | None = None
    counts: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    results: str = ""
    command: list[str] = field(default_factory=list)
    when: str = ""


def results_path(out: Path, release: Release) -> Path:
    return Path(out) / release.label / "results.jsonl"


def run_release(
    release: Release,
    installer: Installer,
    selection: Selection,
    out: Path = DEFAULT_OUT,
    cold: bool = False,
    runner: Callable[[list[str], dict], int] | None = None,
) -> Outcome:
    """Install (or reuse) the release's environment and run its checks there; never raises for a bad release."""
    installed = installer.install(release)
    outcome = Outcome(
        release.label,
        release.family,
        release.version,
        release.framework,
        list(release.requirements),
        installed.ok,
        asdict(installed),
        cache="cold" if cold else "warm",
        when=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    if not installed.ok:
        _write_release(out, release, outcome)
        return outcome
    results = results_path(out, release).resolve()
    argv = [installed.python, "-m", "conformance", "run", "--out", str(results.parent), *selection.arguments(release)]
    environ = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    environ.pop("PYTHONPATH", None)  # the environment's own editable klconf, not the caller's
    with tempfile.TemporaryDirectory(prefix="klconf-cold-cache-") as empty:
        if cold:
            environ["KLCONF_CACHE_DIR"] = empty
        started = time.monotonic()
        outcome.exit_code = (runner or _subprocess_runner)(argv, environ)
        outcome.wall_s = round(time.monotonic() - started, 1)
    outcome.command, outcome.results = argv, str(results)
    outcome.counts, outcome.versions = _read_back(results)
    _write_release(out, release, outcome)
    return outcome


def _subprocess_runner(argv: list[str], environ: dict) -> int:
    log = Path(argv[argv.index("--out") + 1]) / "run.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as sink:
        return subprocess.run(argv, stdout=sink, stderr=subprocess.STDOUT, env=environ).returncode


def _read_back(results: Path) -> tuple[dict, dict]:
    """Verdict counts and the framework versions the run reported (empty when it wrote nothing)."""
    from ..results import read

    if not results.exists():
        return {}, {}
    run = read(results, validate="none")
    versions: dict = {}
    for event in run.framework_events:
        versions.update(event.get("versions") or {})
    return {k: v for k, v in run.counts().items() if v}, versions


def _write_release(out: Path, release: Release, outcome: Outcome) -> None:
    folder = Path(out) / release.label
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "release.json").write_text(json.dumps(asdict(outcome), indent=1) + "\n", encoding="utf-8")
    update_summary(Path(out) / "summary.json", outcome)


def update_summary(path: Path, outcome: Outcome) -> None:
    """Replace this release's entry (same label and cache temperature) in the summary, keeping the others."""
    entries = load_summary(path)
    entries = [e for e in entries if (e.get("label"), e.get("cache")) != (outcome.label, outcome.cache)]
    entries.append(asdict(outcome))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"releases": entries}, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


def load_summary(path: Path) -> list[dict]:
    if not Path(path).exists():
        return []
    try:
        return list(json.loads(Path(path).read_text(encoding="utf-8")).get("releases", []))
    except (ValueError, AttributeError):
        return []


def line(outcome: Outcome) -> str:
    """One printed line per release."""
    if not outcome.installed:
        reason = outcome.install.get("reason", "").strip().splitlines()
        return f"{outcome.label:22s} NOT INSTALLED: {reason[-1] if reason else '?'}"
    install = outcome.install
    took = "reused" if install.get("reused") else f"installed in {install.get('seconds', 0):.0f} s"
    counts = ", ".join(f"{n} {v}" for v, n in outcome.counts.items()) or "no records"
    versions = ", ".join(f"{k} {v}" for k, v in sorted(outcome.versions.items()))
    return (
        f"{outcome.label:22s} {took}; run {outcome.wall_s:.0f} s ({outcome.cache} oracle cache), "
        f"exit {outcome.exit_code}: {counts} [{versions}]"
    )
