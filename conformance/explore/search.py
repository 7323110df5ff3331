"""The search: Hypothesis over each target, in rounds, within a time or example budget.

Hypothesis is driven with explicit settings so that only the suite's own verdicts count as failures:
no example database (nothing read or written between runs), no deadline and no health checks (a slow
framework call is not a bug), the phases explicit/generate/shrink only, and a seed derived from
--seed, the target and the round, so a run is reproducible.

Each failing example raises an exception whose class stands for its mechanism (targets.Failure.key):
Hypothesis keeps one shrinking run per distinct class, so the failures of one mechanism shrink to one
small example, and several mechanisms of one target are shrunk apart. A later round treats a
mechanism already found as passing, so it searches for new ones instead of shrinking the same one
again. Results are memoised per run: Hypothesis replays its shrunk example at the end, and the replay
sees the same outcome even when the time budget has run out in between (a new example after the
deadline passes without being run).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings

from .targets import Failure, Target, example_digest, smaller_inputs

FIRST_ROUND_EXAMPLES = 20  # per target; each later round doubles it, up to LAST_ROUND_EXAMPLES
LAST_ROUND_EXAMPLES = 320
SHRINK_SECONDS = 10.0  # a shrink may run this long past the target's share of the time budget
REDUCE_EVALUATIONS = 60  # candidates tried when reducing a shrunk tensor example's shape


@dataclass
class Budget:
    seconds: float | None = None  # total wall time
    examples: int | None = None  # per target, in one round (no time limit)

    def describe(self) -> str:
        return f"{self.seconds:g} s" if self.seconds is not None else f"{self.examples} examples per target"


@dataclass
class TargetStats:
    label: str
    kind: str
    api: str
    framework: str
    examples: int = 0  # examples evaluated
    failing: int = 0  # of which failed (any mechanism)
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)  # klconf could not evaluate an example (not a finding)


@dataclass
class Found:
    """One mechanism: its shrunk example and failure, and what every failing example of it had in common."""

    target: Target
    failure: Failure
    example: dict
    examples: int = 0  # failing examples seen with this mechanism
    dtypes: set[str] = field(default_factory=set)
    options: list[dict] = field(default_factory=list)
    round: int = 0


class Divergence(Exception):
    """A failing example; subclassed once per mechanism (see `_exception_for`)."""

    def __init__(self, failure: Failure, example: dict):
        super().__init__(failure.mechanism)
        self.failure, self.example = failure, example


_CLASSES: dict[tuple, type] = {}


def _exception_for(key: tuple) -> type:
    """One exception class per mechanism: Hypothesis tells failures apart by their exception's type."""
    if key not in _CLASSES:
        _CLASSES[key] = type(f"Divergence{len(_CLASSES)}", (Divergence,), {"__module__": __name__})
    return _CLASSES[key]


def _settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=False,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=True,
        verbosity=Verbosity.quiet,
        print_blob=False,
    )


def run_seed(base: int, label: str, round_: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{base}:{label}:{round_}".encode()).digest()[:8], "big")


@dataclass
class Search:
    targets: list[Target]
    budget: Budget
    base_seed: int = 0
    progress: Callable[[str], None] = lambda line: None
    found: dict[tuple, Found] = field(default_factory=dict)
    stats: dict[str, TargetStats] = field(default_factory=dict)
    rounds: int = 0
    seconds: float = 0.0

    def run(self) -> Search:
        started = time.monotonic()
        deadline = started + self.budget.seconds if self.budget.seconds is not None else None
        examples = self.budget.examples or FIRST_ROUND_EXAMPLES
        for target in self.targets:
            self.stats.setdefault(target.label, TargetStats(target.label, target.kind, target.api, target.framework))
        while True:
            for index, target in enumerate(self.targets):
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                share = None if deadline is None else now + (deadline - now) / (len(self.targets) - index)
                before = len(self.found)
                self._run_target(target, examples, share, deadline)
                new = len(self.found) - before
                self.progress(
                    f"[{time.monotonic() - started:6.1f}s] round {self.rounds + 1} {target.label}: "
                    f"{self.stats[target.label].examples} examples" + (f", {new} new finding(s)" if new else "")
                )
            self.rounds += 1
            if deadline is None or time.monotonic() >= deadline:
                break
            examples = min(examples * 2, LAST_ROUND_EXAMPLES)
        self.seconds = time.monotonic() - started
        return self

    def _run_target(self, target: Target, max_examples: int, share: float | None, deadline: float | None) -> None:
        stats = self.stats[target.label]
        memo: dict[str, Failure | None] = {}
        first_new: list[float] = []
        round_ = self.rounds

        def out_of_time() -> bool:
            if share is None:
                return False
            assert deadline is not None, "a target gets a share of the time only under a deadline"
            limit = max(share, first_new[0] + SHRINK_SECONDS) if first_new else share
            return time.monotonic() > min(limit, deadline + SHRINK_SECONDS)

        def body(example: dict) -> None:
            digest = example_digest(example)
            if digest not in memo:
                if out_of_time():
                    return  # not run, not memoised: passes
                started = time.monotonic()
                memo[digest] = self._evaluate(target, example, stats)
                stats.seconds += time.monotonic() - started
                self._tally(memo[digest], target, example, round_)
            failure = memo[digest]
            if failure is None or failure.key in self.found and self.found[failure.key].round != round_:
                return  # passes, or a mechanism an earlier round already found
            if not first_new:
                first_new.append(time.monotonic())
            raise _exception_for(failure.key)(failure, example)

        test = _settings(max_examples)(
            seed(run_seed(self.base_seed, target.label, round_))(given(target.strategy())(body))
        )
        try:
            with _shrink_limit(SHRINK_SECONDS if share is not None else None):
                test()
        except BaseException as exc:  # Hypothesis reports divergences by raising them
            if isinstance(exc, KeyboardInterrupt):
                raise
            for divergence in _divergences(exc):
                self._shrunk(target, divergence, round_)

    @staticmethod
    def _evaluate(target: Target, example: dict, stats: TargetStats) -> Failure | None:
        stats.examples += 1
        try:
            return target.evaluate(example, f"explored-{example_digest(example)}")
        except Exception as exc:  # klconf's own problem with an example is not a finding
            if len(stats.errors) < 5:
                stats.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            return None

    def _tally(self, failure: Failure | None, target: Target, example: dict, round_: int) -> None:
        if failure is None:
            return
        self.stats[target.label].failing += 1
        found = self.found.get(failure.key)
        if found is None:
            found = self.found[failure.key] = Found(target, failure, example, round=round_)
        found.examples += 1
        found.dtypes.add(failure.dtype)
        if failure.options not in found.options:
            found.options.append(failure.options)

    def _shrunk(self, target: Target, divergence: Divergence, round_: int) -> None:
        """Hypothesis' final, shrunk example of a mechanism replaces the first one seen; then its shape is
        reduced further where the target knows how."""
        found = self.found.get(divergence.failure.key)
        if found is not None and found.round == round_:
            found.failure, found.example = divergence.failure, divergence.example
            if target.kind != "distribution":
                self._reduce_shape(target, found)

    def _reduce_shape(self, target: Target, found: Found) -> None:
        """Greedy: take the first smaller candidate that fails by the same mechanism, until none does or
        REDUCE_EVALUATIONS candidates have been run."""
        tried = 0
        improved = True
        stop = time.monotonic() + SHRINK_SECONDS if self.budget.seconds is not None else None
        while improved and tried < REDUCE_EVALUATIONS:
            improved = False
            for candidate in smaller_inputs(found.example):
                if tried >= REDUCE_EVALUATIONS or (stop is not None and time.monotonic() > stop):
                    break
                tried += 1
                failure = self._evaluate(target, candidate, self.stats[target.label])
                if failure is not None and failure.key == found.failure.key:
                    found.failure, found.example, improved = failure, candidate, True
                    break


@contextlib.contextmanager
def _shrink_limit(seconds: float | None):
    """Under a time budget, Hypothesis stops shrinking after `seconds` (its own limit is five minutes).
    Returning early from the test after the deadline is not enough: the shrinker would go on trying
    candidates that all pass. The limit is the engine's module constant, read when shrinking starts."""
    from hypothesis.internal.conjecture import engine

    previous = engine.MAX_SHRINKING_SECONDS
    if seconds is not None:
        # hypothesis declares the constant as an int (300); the engine compares it with elapsed float seconds
        engine.MAX_SHRINKING_SECONDS = seconds  # type: ignore[assignment]
    try:
        yield
    finally:
        engine.MAX_SHRINKING_SECONDS = previous


def _divergences(exc: BaseException) -> list[Divergence]:
    """Every Divergence in what Hypothesis raised (one, or a group of them); anything else is dropped:
    a flaky example or klconf's own error is no finding."""
    if isinstance(exc, Divergence):
        return [exc]
    inner = getattr(exc, "exceptions", None)  # an exception group (BaseExceptionGroup from Python 3.11)
    if isinstance(inner, (list, tuple)) and "Flaky" not in type(exc).__name__:
        return [d for one in inner if isinstance(one, BaseException) for d in _divergences(one)]
    return []
