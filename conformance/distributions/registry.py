"""Which KL pairs each library registers, read from its registry at run time, against the oracle's coverage.

    python -m conformance.distributions.registry            # every library importable here
    python -m conformance.distributions.registry torch      # one (torch, tfp, tfp_jax, distrax)

For each library it lists: the registry's entries (class pairs, as the library stores them:
torch.distributions.kl._KL_REGISTRY, TFP's kullback_leibler._DIVERGENCES, for distrax the
substrate registry's entries that involve distrax classes); the family pairs the library
resolves through that registry, including by inheritance (TFP's Exponential is a Gamma),
apart from those that resolve only to a generic entry; which of them klconf's closed forms
cover; and the registry entries no covered family pair reaches -- the library's KLs that
klconf does not check.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from ..frameworks import Unavailable
from . import closed_forms
from .libraries import Library, all_libraries, handle

# Registry entries on abstract or wrapper classes: they resolve a lookup for many pairs but compute
# only some (torch's ExponentialFamily pair needs one family on both sides, TransformedDistribution
# equal transforms; TFP's Distribution/_TensorCoercible/JitPublicMethods entries unwrap and look up again).
GENERIC = {
    "ExponentialFamily",
    "TransformedDistribution",
    "_TransformedDistribution",
    "Distribution",
    "_TensorCoercible",
    "JitPublicMethods",
    "Independent",
    "_Independent",
}


@dataclass
class Coverage:
    library: str
    entries: list[tuple[str, str]] = field(default_factory=list)  # registered class pairs
    specific: list[tuple[str, str]] = field(default_factory=list)  # family pairs resolved to a specific entry
    generic: list[tuple[str, str]] = field(default_factory=list)  # family pairs resolved only by a GENERIC entry
    covered: list[tuple[str, str]] = field(default_factory=list)  # specific or generic pairs the oracle covers
    uncovered_entries: list[tuple[str, str]] = field(default_factory=list)


def classes(library: Library, h) -> dict:
    """family -> the library's class for it."""
    out = {}
    for family in closed_forms.FAMILIES:
        ctor = library.constructor(family)
        if ctor is None:
            continue
        cls = h.dist
        for part in ctor.cls.split("."):
            cls = getattr(cls, part)
        out[family] = cls
    return out


def coverage(library: Library) -> Coverage:
    h = handle(library)
    by_family = classes(library, h)
    registry = h.registry()
    generic_fns = {fn for (a, b), fn in registry.items() if {a.__name__, b.__name__} & GENERIC}
    result = Coverage(library.name, entries=sorted((a.__name__, b.__name__) for a, b in registry))
    reached = set()  # registered functions some covered family pair resolves to
    for fp, cp in by_family.items():
        for fq, cq in by_family.items():
            fn = h.lookup(cp, cq)
            if fn is None:
                continue
            (result.generic if fn in generic_fns else result.specific).append((fp, fq))
            if closed_forms.covered(fp, fq):
                result.covered.append((fp, fq))
                reached.add(fn)
    result.uncovered_entries = sorted((a.__name__, b.__name__) for (a, b), fn in registry.items() if fn not in reached)
    return result


def in_both(first: Coverage, second: Coverage) -> list[tuple[str, str]]:
    """Class-name pairs registered in both libraries."""
    return sorted(set(first.entries) & set(second.entries))


def _pairs(pairs) -> str:
    return ", ".join(f"{a}||{b}" for a, b in pairs) or "none"


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or [lib.key for lib in all_libraries()]
    found = {}
    for lib in all_libraries():
        if lib.key not in names:
            continue
        try:
            found[lib.key] = cov = coverage(lib)
        except Unavailable as exc:
            print(f"== {lib.name}: unavailable ({exc})\n")
            continue
        print(f"== {lib.name}")
        print(f"registry entries ({len(cov.entries)}): {_pairs(cov.entries)}")
        specific_covered = [p for p in cov.specific if p in cov.covered]
        print(
            f"family pairs resolved to a specific entry ({len(cov.specific)}), "
            f"of which the oracle covers {len(specific_covered)}: {_pairs(specific_covered)}"
        )
        print(f"  not covered: {_pairs([p for p in cov.specific if p not in cov.covered])}")
        print(
            f"family pairs resolved only through a generic entry ({len(cov.generic)}; they compute where the "
            f"generic rule applies), covered: {_pairs([p for p in cov.generic if p in cov.covered])}"
        )
        print(
            f"registry entries no covered family pair reaches ({len(cov.uncovered_entries)}): "
            f"{_pairs(cov.uncovered_entries)}\n"
        )
    if "torch" in found and "tfp" in found:
        both = in_both(found["torch"], found["tfp"])
        print(f"== registered in both torch and TFP ({len(both)}): {_pairs(both)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
