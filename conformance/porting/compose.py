"""Composing an equivalent: a source's recipe written in a target framework's vocabulary.

The snippet defines `equivalent(p, q)` (plus `sample_weight=None` when the source call takes
sample weights): P and Q arrive as NumPy probabilities laid out as the source takes them
(classes on its class axis), and the function returns what the source returns for the same
P and Q fed in its own input spaces. Each line follows from one convention field:

  input space logits   -> rows normalised (softmax(log Q) = Q / sum Q)
  clip_epsilon         -> both arguments clipped to [epsilon, 1]
  normalizes           -> rows normalised
  elementwise, zero_*  -> the term spelling with the same zeros (the framework's own KL function
                          where one matches exactly), else the nearest one and a mask per field
  reduction, divisors  -> a sum over the class axis, weights, a total and its divisor
  output_dtype         -> a cast, where the source returns another dtype than its input's

The snippet imports NumPy and the target framework only.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from .recipe import Recipe
from .vocabulary import Term, Vocabulary, framework_terms, vocabulary

PLAIN, GENERALIZED = "p*log(p/q)", "p*log(p/q)-p+q"
ZERO_FIELDS = ("zero_p", "zero_both", "zero_q")
# where each zero convention applies, over the prepared p and q
MASKS = {"zero_p": "(p == 0) & (q != 0)", "zero_both": "(p == 0) & (q == 0)", "zero_q": "(p > 0) & (q == 0)"}
INDENT = "    "


@dataclass
class Equivalent:
    recipe: Recipe
    target: str
    code: str  # the whole snippet
    expression: str  # the computation in one line (the lines after conversion, joined)
    term: Term  # the spelling of the elementwise term that was chosen
    masked: list[str] = field(default_factory=list)  # zero fields reproduced with a mask
    notes: list[str] = field(default_factory=list)

    @property
    def takes_weights(self) -> bool:
        return self.recipe.weights_fed

    def function(self):
        """`equivalent` from the snippet, executed here (the verifier calls it on every case). Snippets that
        differ only in their comments and docstrings (many source calls share one expression) share one
        executed module, so a compiled computation (`jax.jit`) compiles once per shape and dtype for all."""
        tree = ast.parse(self.code)
        key = (self.target, ast.dump(_without_docstrings(tree)))
        hit = _EXECUTED.get(key)
        if hit is None:
            namespace: dict = {"__name__": f"klconf_port_{self.target}"}
            exec(compile(self.code, f"<port of {self.recipe.title} to {self.target}>", "exec"), namespace)
            hit = _EXECUTED[key] = namespace["equivalent"]
        return hit


_EXECUTED: dict[tuple[str, str], object] = {}  # (target, the snippet's code without docstrings) -> equivalent


def _without_docstrings(tree: ast.Module) -> ast.Module:
    """The module with every module, function and class docstring removed (comments are not in the tree)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            first = body[0].value if body and isinstance(body[0], ast.Expr) else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def choose_term(recipe: Recipe, terms: list[Term]) -> tuple[Term, list[str]]:
    """The spelling whose zeros are the source's (the first listed wins a tie: the framework's own
    functions come first), and the zero fields it still gets wrong, which are then masked.
    Under clipping no argument reaches zero, so any spelling of the right term serves."""
    c = recipe.candidate
    wanted = {"zero_p": c.zero_p, "zero_both": c.zero_both, "zero_q": c.zero_q}
    usable = [t for t in terms if t.elementwise == c.elementwise or t.elementwise == PLAIN]
    if not usable:
        raise ValueError(f"no spelling of {c.elementwise} in the vocabulary")

    def wrong(t: Term) -> list[str]:
        if c.clip_epsilon is not None:
            return []
        return [f for f, have in zip(ZERO_FIELDS, t.zeros) if have != wanted[f]]

    best = min(usable, key=lambda t: (len(wrong(t)), t.elementwise != c.elementwise))
    return best, wrong(best)


def compose(recipe: Recipe, target: str, terms: list[Term] | None = None) -> Equivalent:
    """The equivalent of `recipe` in `target`. `terms`: the spellings to choose from (default: the
    framework's own KL functions, measured by inference, then the generic spellings)."""
    voc = vocabulary(target)
    if terms is None:
        terms = framework_terms(target) + list(voc.generic_terms())
    term, masked = choose_term(recipe, terms)
    prelude = _prelude(recipe)
    core = _preparation(recipe, voc) + _term_lines(recipe, voc, term, masked) + _reduction_lines(recipe, voc)
    out = voc.fill("to_numpy", x="out")
    cast = _output_cast(recipe)
    ret = f"return {out}.astype(OUTPUT_DTYPE.get(dtype.name, dtype))" if cast else f"return {out}"
    uses_dtype = bool(cast) or "dtype" in voc.scope or any("dtype" in line for line in prelude)
    code = _render(recipe, voc, prelude, core, ret, cast, uses_dtype)
    expression = "; ".join(_strip_comment(line) for line in prelude + core if not line.lstrip().startswith("#"))
    notes = _notes(recipe, masked)
    return Equivalent(recipe, target, code, expression, term, masked, notes)


# --------------------------------------------------------------------------- pieces


def _prelude(recipe: Recipe) -> list[str]:
    """Shape arithmetic in NumPy, before any native array exists: the class axis, a mean's divisor, weights."""
    c = recipe.candidate
    lines = []
    if (
        c.reduction == "per_row"
        or recipe.weighted
        or "logits" in c.spaces
        or c.normalizes
        or (c.reduction == "mean_batch" and c.batch_divisor == "rows")
    ):
        lines.append(_axis_line(c.class_axis))
    count = _count_line(c)
    if count:
        lines.append(count)
    if recipe.weighted:
        lines.append(
            "w = np.ones(shape[:axis] + shape[axis + 1:], dtype) if sample_weight is None "
            "else np.asarray(sample_weight, dtype)  # per-row sample weights"
        )
    elif recipe.weights_fed:
        lines.append("# sample_weight is accepted and ignored, as the source ignores it (inferred)")
    return lines


def _preparation(recipe: Recipe, voc: Vocabulary) -> list[str]:
    """P and Q as the source reads them: softmax of log-probabilities read as logits, clipping, normalising."""
    c = recipe.candidate
    lines = []
    for side, space in (("p", recipe.p_space), ("q", recipe.q_space)):
        if space == "logits":
            big = side.upper()
            lines.append(
                f"{side} = {side} / {voc.fill('sum_keep', x=side, axis='axis')}  # {_arg(recipe, side)} is "
                f"read as logits: softmax(log {big}) = {big} / sum({big})"
            )
    if c.clip_epsilon is not None:
        eps = repr(float(c.clip_epsilon))
        lines.append(
            f"p, q = {voc.fill('clip', x='p', lo=eps, hi='1.0')}, {voc.fill('clip', x='q', lo=eps, hi='1.0')}"
            f"  # clip_epsilon={c.clip_epsilon:g}: both arguments clipped to [{c.clip_epsilon:g}, 1]"
        )
    if c.normalizes:
        lines.append(
            f"p, q = p / {voc.fill('sum_keep', x='p', axis='axis')}, "
            f"q / {voc.fill('sum_keep', x='q', axis='axis')}  # normalizes: both rows rescaled to sum to 1"
        )
    return lines


def _term_lines(recipe: Recipe, voc: Vocabulary, term: Term, masked: list[str]) -> list[str]:
    """The elementwise term in the chosen spelling, made generalised if need be, masked where its zeros differ."""
    c = recipe.candidate
    lines = [f"term = {term.template.format(p='p', q='q')}  # {term.origin}"]
    if c.elementwise == GENERALIZED and term.elementwise == PLAIN:
        lines.append("term = term - p + q  # elementwise p*log(p/q)-p+q (generalised KL)")
    for name in masked:
        value = _zero_value(name, getattr(c, name), c.elementwise, voc)
        lines.append(
            f"term = {voc.fill('where', c=MASKS[name], a=value, b='term')}  "
            f"# {name}={getattr(c, name)}: {_zero_words(name, getattr(c, name))}"
        )
    return lines


def _arg(recipe: Recipe, side: str) -> str:
    index = recipe.candidate.p_index if side == "p" else 1 - recipe.candidate.p_index
    return recipe.arguments[index]


def _axis_line(class_axis) -> str:
    if class_axis == 0:
        return "axis = 0  # class_axis=0: classes on the first axis"
    if class_axis == 1:
        return "axis = 1 if len(shape) > 1 else 0  # class_axis=1: classes on axis 1 (axis 0 for one unbatched row)"
    return "axis = len(shape) - 1  # class_axis=-1: classes on the last axis"


def _count_line(c) -> str:
    """The divisor of a mean, from the reduction and its divisor field (Python integers from shapes)."""
    if c.reduction == "mean_all":
        return "count = int(np.prod(shape))  # reduction=mean_all: divided by every element"
    if c.reduction != "mean_batch":
        return ""
    first = "(shape[1] if len(shape) > 1 else shape[0])" if c.class_axis == 0 else "shape[0]"
    if c.batch_divisor == "rows":
        return (
            "count = int(np.prod(shape[:axis] + shape[axis + 1:]))  "
            "# reduction=mean_batch, batch_divisor=rows: divided by the number of rows"
        )
    if c.batch_divisor == "batch":
        row = "shape[1]" if c.class_axis == 0 else "shape[0]"
        return (
            f"count = {row} if len(shape) > 1 else 1  "
            "# reduction=mean_batch, batch_divisor=batch: the batch size, 1 for one unbatched row"
        )
    return (
        f"count = {first}  # reduction=mean_batch, batch_divisor=dim0: divided by the first dimension "
        "(the classes of one unbatched row)"
    )


def _zero_value(name: str, value: str, elementwise: str, voc: Vocabulary) -> str:
    if value == "nan":
        return voc.fill("constant", value="np.nan", like="term")
    if name == "zero_q":
        return voc.fill("constant", value="np.inf", like="term")
    if name == "zero_p" and elementwise == GENERALIZED:
        return "q"  # p log(p/q) - p + q at p = 0
    return voc.fill("constant", value="0.0", like="term")


def _zero_words(name: str, value: str) -> str:
    where = {"zero_p": "p = 0 < q", "zero_both": "p = q = 0", "zero_q": "q = 0 < p"}[name]
    return f"the source returns {'NaN' if value == 'nan' else value} where {where}"


def _reduction_lines(recipe: Recipe, voc: Vocabulary) -> list[str]:
    c = recipe.candidate
    r = c.reduction
    if r == "none":
        return ["out = term  # reduction=none: elementwise"]
    lines = []
    summed = "term"
    if r == "per_row" or recipe.weighted:
        lines.append(f"rows = {voc.fill('sum', x='term', axis='axis')}  # KL per row: the sum over the class axis")
        if recipe.weighted:
            lines.append("rows = rows * w  # each row times its sample weight")
        summed = "rows"
    if r == "per_row":
        lines.append("out = rows  # reduction=per_row")
        return lines
    total = voc.fill("total", x=summed)
    if r == "sum":
        lines.append(f"out = {total}  # reduction=sum")
    elif r in ("mean_all", "mean_batch"):
        lines.append(f"out = {total} / count")
    elif c.batch_divisor == "batch":
        lines.append(
            f"out = {total} / {voc.fill('total', x='w')} if len(shape) > 1 else {total}  "
            "# reduction=mean_weighted, batch_divisor=batch: divided by the sum of the weights, "
            "except one unbatched row's weighted loss"
        )
    else:
        lines.append(
            f"out = {total} / {voc.fill('total', x='w')}  # reduction=mean_weighted: divided by the sum of the weights"
        )
    return lines


def _output_cast(recipe: Recipe) -> dict:
    """Input dtype -> output dtype where the source returns another dtype (NumPy dtypes only)."""
    numpy_names = ("float16", "float32", "float64")
    return {k: v for k, v in recipe.output_dtype.items() if k in numpy_names and v in numpy_names and k != v}


def _strip_comment(line: str) -> str:
    code = line.split("  # ", 1)[0].strip()
    return code


def _render(recipe: Recipe, voc: Vocabulary, prelude, core, ret, cast, uses_dtype) -> str:
    params = "p, q, sample_weight=None" if recipe.weights_fed else "p, q"
    layout = {-1: "the last axis", 0: "axis 0", 1: "axis 1 (axis 0 when 1-D)", None: "the last axis"}[
        recipe.candidate.class_axis
    ]
    lines = [
        f'"""{recipe.title} in {voc.framework}, composed by klconf from the source\'s convention."""',
        "import numpy as np",
        *voc.imports,
    ]
    if voc.helpers:
        lines += ["", "", *voc.helpers]
    if cast:
        lines += ["", f"OUTPUT_DTYPE = {cast!r}  # the source's output dtype where it is not the input's (inferred)"]
    lines += [
        "",
        "",
        f"def equivalent({params}):",
        f'{INDENT}"""The value of {recipe.call_text()}',
        f"{INDENT}for probabilities P = p and Q = q (NumPy arrays, classes on {layout}), as a NumPy value.",
        "",
        *_wrapped(f"Source convention ({recipe.origin}): {recipe.describe()}.", INDENT),
        *(
            _wrapped("sample_weight: the per-row weights the source call gets as W (None: every row weighs 1).", INDENT)
            if recipe.weights_fed
            else []
        ),
        f'{INDENT}"""',
        f"{INDENT}p, q = np.asarray(p), np.asarray(q)",
    ]
    if uses_dtype:
        lines.append(f"{INDENT}dtype = np.result_type(p, q)")
    if any("shape" in line for line in prelude):
        lines.append(f"{INDENT}shape = np.broadcast_shapes(p.shape, q.shape)")
    lines += [out for line in prelude for out in _commented(line, INDENT)]
    body = [f"p, q = {voc.fill('native', x='p')}, {voc.fill('native', x='q')}"]
    if recipe.weighted:
        body.append(f"w = {voc.fill('native', x='w')}")
    if voc.compiled:
        arrays = ["p", "q", "w"] if recipe.weighted else ["p", "q"]
        static = [name for name in ("axis", "count", "shape") if _reads(core, name)]
        call = ", ".join(arrays + [f"{name}={name}" for name in static])
        body.append(f"out = _native({call})  # compiled once per shape and dtype")
        kernel = [
            "",
            "",
            f"def _native({', '.join(arrays + static)}):",
            f'{INDENT}"""The computation on {voc.framework} arrays, compiled as a whole below."""',
            *[out for line in core + ["return out"] for out in _commented(line, INDENT)],
            "",
            "",
            f"_native = {voc.compiled.format(function='_native', static=_tuple_text(static))}",
        ]
        at = next(i for i, line in enumerate(lines) if line.startswith("def equivalent("))
        lines[at - 2 : at - 2] = kernel
    else:
        body += core
    body.append(ret)
    if voc.scope:
        lines += _commented(voc.scope, INDENT)
    depth = INDENT * (2 if voc.scope else 1)
    lines += [out for line in body for out in _commented(line, depth)]
    return "\n".join(lines) + "\n"


def _tuple_text(names: list[str]) -> str:
    """A tuple of strings as source text in the house style: ("axis", "count"), ("count",) or ()."""
    items = ", ".join(f'"{name}"' for name in names)
    return f"({items},)" if len(names) == 1 else f"({items})"


def _reads(lines: list[str], name: str) -> bool:
    """Whether the code of `lines` (comments aside) reads the Python name `name`."""
    return any(re.search(rf"\b{name}\b", _strip_comment(line)) for line in lines)


WIDTH = 110  # generated lines longer than this get their comment on lines of its own, above them


def _commented(line: str, indent: str) -> list[str]:
    """A generated line at `indent`; a long one's trailing comment goes above it."""
    if len(indent + line) <= WIDTH or "  # " not in line:
        return [indent + line]
    code, comment = line.split("  # ", 1)
    return [f"{indent}# {text}" for text in wrap_words(comment, WIDTH - len(indent) - 2)] + [indent + code]


def _wrapped(text: str, indent: str) -> list[str]:
    return [indent + piece for piece in wrap_words(text, WIDTH - len(indent))]


def wrap_words(text: str, width: int) -> list[str]:
    """`text` in pieces of at most `width` characters, split at spaces (a longer word stays whole)."""
    out, current = [], ""
    for word in text.split(" "):
        if current and len(current) + 1 + len(word) > width:
            out.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    return out + [current]


def _notes(recipe: Recipe, masked: list[str]) -> list[str]:
    notes = []
    if recipe.origin != "inferred":
        notes.append(recipe.origin)
    for name in masked:
        notes.append(
            f"{name}={getattr(recipe.candidate, name)} is reproduced with a mask: no spelling of the term "
            f"in this framework returns that by itself"
        )
    half = {
        k: v for k, v in recipe.accumulation.items() if k in ("float16", "bfloat16") and v not in ("n/a", "unknown")
    }
    if half:
        outs = {k: recipe.output_dtype.get(k, "?") for k in half}
        notes.append(
            "the contract is float64 and float32; float16 is checked apart and bfloat16 not at all (NumPy "
            "has no bfloat16 to hand the equivalent); the source (inferred): "
            + "; ".join(f"in {k} returns {outs[k]} and accumulates in {v}" for k, v in half.items())
        )
    return notes
