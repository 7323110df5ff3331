"""Each target framework's vocabulary: the few primitives an equivalent is composed of, as source text.

A port is written in a framework's own words: how a NumPy array becomes a native one and back,
log, xlogy, where, clip, sums. The elementwise KL term has several spellings that differ only
at zeros (IEEE arithmetic decides: 0 * log 0 is 0 through xlogy and NaN through a product), so
each generic spelling states the zero behaviour it has, and the composer picks the spelling whose
behaviour the source shares instead of patching one up. The framework's own elementwise KL
functions join the generic spellings in `framework_terms`, with their behaviour measured by
convention inference, never assumed.

Each framework module writes its own `VOCABULARY` (conformance/frameworks/<name>.py); nothing
here imports a framework: templates are text, filled by `compose`.
"""

from __future__ import annotations

from dataclasses import dataclass


def __getattr__(name: str):
    """TARGETS, the frameworks an equivalent can be written for: those whose module exports a VOCABULARY.
    Read from the framework registry on first use, because framework modules import `Vocabulary` from here."""
    if name == "TARGETS":
        from ..frameworks import PORTING_TARGETS

        return PORTING_TARGETS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class Term:
    """One spelling of the elementwise KL term over probabilities {p} and {q}, and what it returns at zeros."""

    template: str  # over {p}, {q}, and the primitives' names below
    elementwise: str  # "p*log(p/q)" or "p*log(p/q)-p+q"
    zero_p: str  # term where p = 0 < q: "0" or "nan"
    zero_both: str  # term where p = q = 0
    zero_q: str  # term where q = 0 < p: "inf" or "nan"
    origin: str  # where the zero behaviour comes from, shown in the snippet

    @property
    def zeros(self) -> tuple[str, str, str]:
        return self.zero_p, self.zero_both, self.zero_q


@dataclass(frozen=True)
class Vocabulary:
    framework: str
    imports: tuple[str, ...]
    native: str  # {x}: a NumPy array -> a native array of the same dtype
    to_numpy: str  # {x}: a native array -> a NumPy array
    scope: str  # a `with` header the native computation runs under, or ""
    log: str
    xlogy: str  # {x} log {y}, 0 where x = 0
    where: str  # {c} ? {a} : {b}
    constant: str  # {value} (a NumPy expression: np.nan, np.inf, 0.0) as a scalar of {like}'s dtype
    clip: str  # {x} clipped to [{lo}, {hi}]
    sum: str  # {x} summed over {axis}
    sum_keep: str  # the same, keeping the axis (for normalising rows)
    total: str  # {x} summed over every element
    # The native computation {function} compiled once per shape and dtype, with {static} the tuple of its
    # Python-valued arguments' names (e.g. JAX's jit), or "": where eager execution compiles
    # every primitive for every new shape (JAX), the verifier's run over the corpus otherwise spends most of
    # its time compiling, and a user's training step would compile the computation as a whole anyway.
    compiled: str = ""
    # Module-level definitions the snippet needs before `equivalent` (each a line), e.g. a conversion too long
    # for one expression; `native` may call them
    helpers: tuple[str, ...] = ()

    def fill(self, name: str, **values) -> str:
        return getattr(self, name).format(**values)

    def generic_terms(self) -> tuple[Term, ...]:
        """The elementwise term spelled three ways, one per zero behaviour (IEEE arithmetic, no masks)."""
        log_p, log_q = self.fill("log", x="{p}"), self.fill("log", x="{q}")
        xlogy_pp, xlogy_pq = self.fill("xlogy", x="{p}", y="{p}"), self.fill("xlogy", x="{p}", y="{q}")
        return (
            Term(
                f"{xlogy_pp} - {xlogy_pq}",
                "p*log(p/q)",
                "0",
                "0",
                "inf",
                "xlogy(p, p) - xlogy(p, q): xlogy(0, y) = 0, so p = 0 gives 0 whatever q",
            ),
            Term(
                f"{xlogy_pp} - {{p}} * {log_q}",
                "p*log(p/q)",
                "0",
                "nan",
                "inf",
                "xlogy(p, p) - p * log(q): 0 * log(0) = 0 * -inf = NaN where p = q = 0",
            ),
            Term(
                f"{{p}} * ({log_p} - {log_q})",
                "p*log(p/q)",
                "nan",
                "nan",
                "inf",
                "p * (log(p) - log(q)): 0 * -inf = NaN wherever p = 0",
            ),
        )


def vocabulary(framework: str) -> Vocabulary:
    from ..frameworks import KNOWN, PORTING_TARGETS, vocabulary_of

    found = vocabulary_of(framework) if framework in KNOWN else None
    if found is None:
        raise KeyError(f"no porting vocabulary for {framework!r} (targets: {', '.join(PORTING_TARGETS)})")
    return found


def framework_terms(framework: str) -> list[Term]:
    """The framework's own elementwise KL functions as terms, with the zero behaviour inference measured.

    Candidates are the framework's built-in Api entries that need nothing beyond the framework,
    broadcast P against Q (as every source's equivalent must), whose snippet is one call and whose
    declared reduction is "none"; each is then inferred as a
    black box, and kept only if inference finds it elementwise, unclipped, unnormalised and fully
    known. Its arguments are written from P and Q in the spaces inference found (log Q where it
    takes log-probabilities). A framework that is not installed contributes nothing.
    """
    from ..frameworks import Unavailable, builtin_apis
    from ..inference import UNKNOWN, infer

    terms = []
    for api in builtin_apis([framework]):
        if api.requires or not api.broadcasts or not isinstance(api.snippet, str) or "\n" in api.snippet:
            continue
        for options in api.options:
            if api.convention(options).reduction != "none":
                continue
            try:
                inference = infer(api, options, "cpu", dtypes=False)  # the zeros decide; dtypes are not read
            except Unavailable:
                return []
            c, fields = inference.final, inference.fields
            if (
                c is None
                or UNKNOWN in (fields[f] for f in ("zero_p", "zero_both", "zero_q", "reduction"))
                or c.reduction != "none"
                or c.clip_epsilon is not None
                or c.normalizes
            ):
                continue
            voc = vocabulary(framework)
            args = [_argument(voc, "{p}" if i == c.p_index else "{q}", c.spaces[i]) for i in (0, 1)]
            template = api.snippet.format(a=args[0], b=args[1], o=options, w="None", dtype="")
            label = f"{api.name}({api.option_label(options)})" if options else api.name
            terms.append(
                Term(
                    template,
                    c.elementwise,
                    c.zero_p,
                    c.zero_both,
                    c.zero_q,
                    f"{label}, the framework's own KL function (zeros inferred: p=0 gives {c.zero_p}, "
                    f"p=q=0 gives {c.zero_both}, q=0 gives {c.zero_q})",
                )
            )
    return terms


def _argument(voc: Vocabulary, name: str, space: str) -> str:
    """P or Q in the space an API takes them: log-probabilities are valid logits too."""
    return name if space == "prob" else voc.fill("log", x=name)
