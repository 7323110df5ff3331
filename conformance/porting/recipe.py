"""What a source call computes, read off its inferred convention, as the steps a port must take.

The source is probed as a black box (`conformance.inference`); the surviving candidate holds
every field a port needs: which argument carries P and in which space each argument is
read, the elementwise term and its zeros, clipping, normalisation, the class axis, the
reduction and its divisor, and whether sample weights are used. Where inference leaves a
field unknown, the declared convention stands in and the recipe says so. No field is read
from per-API code.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..frameworks import Api
from ..inference import STRUCTURAL, UNKNOWN, ZEROS, Inference, describe, infer
from ..inference.candidates import Candidate, from_convention


@dataclass
class Recipe:
    api: Api
    options: dict
    candidate: Candidate  # the convention, as inference's canonical candidate
    arguments: tuple[str, str]  # the source's parameter names, call order
    weights_fed: bool  # the call passes per-row sample weights
    origin: str  # "inferred", or why the declared convention stood in
    output_dtype: dict  # input dtype -> the source's output dtype (inferred)
    accumulation: dict  # float16/bfloat16 -> "higher" | "input" | ... (inferred)

    # ---------------------------------------------------------------- the fields, by name

    @property
    def p_space(self) -> str:
        return self.candidate.spaces[self.candidate.p_index]

    @property
    def q_space(self) -> str:
        return self.candidate.spaces[1 - self.candidate.p_index]

    @property
    def reduction(self) -> str:
        return self.candidate.reduction

    @property
    def weighted(self) -> bool:
        """The source multiplies rows by the weights it is given."""
        return self.candidate.weighted

    @property
    def title(self) -> str:
        label = self.api.option_label(self.options)
        return f"{self.api.name}({label})" if label else self.api.name

    def describe(self) -> str:
        return describe(self.candidate, self.arguments, self.weights_fed)

    def call_text(self) -> str:
        """The source call in words: which argument gets P or Q, and in which space."""
        c = self.candidate
        args = []
        for i, name in enumerate(self.arguments):
            side = "P" if i == c.p_index else "Q"
            space = c.spaces[i]
            args.append(f"{name}={side}" if space == "prob" else f"{name}=log {side}")
        args += [f"{k}={v!r}" for k, v in self.options.items() if k != "sample_weight"]
        if self.weights_fed:
            args.append("sample_weight=W")
        return f"{self.api.name}({', '.join(args)})"


def recipe_for(api: Api, options: dict, device: str = "cpu") -> Recipe:
    """The source's recipe from convention inference (raises Unavailable when it cannot run here)."""
    inference = infer(api, options, device)
    return from_inference(api, options, inference)


def from_inference(api: Api, options: dict, inference: Inference) -> Recipe:
    weights_fed = bool(options.get("sample_weight"))
    unknown = [f for f in STRUCTURAL + ZEROS if inference.fields[f] == UNKNOWN]
    if inference.final is not None and not unknown:
        candidate, origin = inference.final, "inferred"
    else:
        candidate = from_convention(api.convention(options), weights_fed)
        origin = f"declared convention used: inference left {', '.join(unknown) or 'the structure'} unknown"
    first, second = inference.arguments
    return Recipe(
        api,
        dict(options),
        candidate,
        (first, second),
        weights_fed,
        origin,
        _mapping(inference.fields.get("output_dtype")),
        _mapping(inference.fields.get("accumulation")),
    )


def _mapping(value) -> dict:
    return dict(value) if isinstance(value, dict) else {}
