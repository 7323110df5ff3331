"""port(): a source call's equivalent in a target framework, composed from its inferred convention and
verified on the corpus; Port, the result, as a snippet and as the JSON `klconf port --json` prints."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..cases import Case, load_cases
from ..frameworks import Api, Unavailable, binding
from .compose import Equivalent, compose, wrap_words
from .recipe import Recipe, recipe_for
from .verify import DTYPES, Verification
from .verify import verify as verify_equivalent
from .vocabulary import TARGETS


@dataclass
class Port:
    equivalent: Equivalent
    verification: Verification
    seconds: float

    @property
    def recipe(self) -> Recipe:
        return self.equivalent.recipe

    @property
    def target(self) -> str:
        return self.equivalent.target

    @property
    def verified_cases(self) -> int:
        return len(self.verification.verified())

    @property
    def differs_on(self) -> list[dict]:
        return self.verification.differs()

    @property
    def verdict(self) -> str:
        """pass: verified on every in-domain case it applies to; fail: it differs on one at least."""
        return "fail" if self.differs_on or not self.verified_cases else "pass"

    @property
    def code(self) -> str:
        """The snippet, with what the verification found written under its first line."""
        first, _, rest = self.equivalent.code.partition("\n")
        return f"{first}\n{self._summary()}{rest}"

    def _summary(self) -> str:
        v = self.verification
        lines = [
            f"# Verified against {self.recipe.api.name} on {self.verified_cases} cases of klconf's corpus "
            f"({' and '.join(DTYPES)}, CPU); float16 on {len(v.verified('float16'))}."
        ]
        for entry in self.differs_on:
            lines.append(f"# Differs on {entry['case']} ({', '.join(entry['dtypes'])}): {entry['reason']}")
        outside = v.differs("out_of_domain")
        if outside:
            lines.append(
                f"# Outside the contract (inputs that are not probabilities), differs on: "
                f"{', '.join(e['case'] for e in outside)}"
            )
        half = v.differs("float16")
        if half:
            lines.append(f"# In float16 (checked apart), differs on: {', '.join(e['case'] for e in half)}")
        for note in self.equivalent.notes:
            lines.append(f"# Note: {note}")
        return "\n".join(_wrap(line) for line in lines) + "\n"

    def to_json(self) -> dict:
        v = self.verification
        return {
            "source": self.recipe.api.name,
            "options": dict(self.recipe.options),
            "source_framework": self.recipe.api.framework,
            "target_framework": self.target,
            "verdict": self.verdict,
            "code": self.code,
            "expression": self.equivalent.expression,
            "verified_cases": self.verified_cases,
            "differs_on": [{"case": e["case"], "dtypes": e["dtypes"], "reason": e["reason"]} for e in self.differs_on],
            **{
                scope: {"verified_cases": len(v.verified(scope)), "differs_on": v.differs(scope)}
                for scope in ("out_of_domain", "float16")
            },
            "not_applicable": v.not_applicable(),
            "convention": self.recipe.describe(),
            "convention_origin": self.recipe.origin,
            "term": self.equivalent.term.origin,
            "masked": list(self.equivalent.masked),
            "notes": list(self.equivalent.notes),
            "dtypes": list(DTYPES),
            "worst_headroom": v.worst_headroom,
            "seconds": round(self.seconds, 3),
        }


def _wrap(line: str, width: int = 118) -> str:
    """A long comment line folded at spaces, every piece still a comment."""
    first, *rest = wrap_words(line, width)
    return "\n".join([first] + [f"#  {piece}" for piece in rest])


def unavailable(api: Api, target: str) -> str | None:
    """Why this port cannot be composed and verified here (a framework or module missing), else None."""
    source = binding(api.framework)
    return source.available() or api.missing() or binding(target).available()


def targets_for(api: Api, frameworks=TARGETS) -> list[str]:
    """The frameworks a source call is ported to: every target but its own."""
    return [t for t in frameworks if t in TARGETS and t != api.framework]


def port(api: Api, options: dict, target: str, cases: list[Case] | None = None, device: str = "cpu") -> Port:
    """Compose the equivalent of `api(options)` in `target` and verify it on `cases` (default: the corpus).
    Raises Unavailable when the source or the target cannot run here."""
    if target not in TARGETS:
        raise KeyError(f"unknown target framework {target!r} (targets: {', '.join(TARGETS)})")
    missing = unavailable(api, target)
    if missing:
        raise Unavailable(missing)
    binding(target).handle()  # a broken install is Unavailable, with its reason
    started = time.perf_counter()
    recipe = recipe_for(api, options, device)
    equivalent = compose(recipe, target)
    verification = verify_equivalent(equivalent, load_cases() if cases is None else cases, device)
    return Port(equivalent, verification, time.perf_counter() - started)
