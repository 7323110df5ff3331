"""klconf's outcomes vocabulary: every verdict, failure kind and kind of check a record can carry, each with
when it happens. The results schema (conformance/schema/results.schema.json) names these members and
tests/test_outcomes.py holds it to this module; INTERPRETING.md is the reader's contract built on them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    name: str
    meaning: str  # when a record carries it


VERDICTS = (
    Term("pass", "the API's output agrees with the expected value (or the property holds) within the tolerance"),
    Term("fail", "the API ran and its result is wrong: `kind` says how (a value, a NaN, a dtype, a mutated input)"),
    Term(
        "error",
        "the check could not judge a result: the API raised (kind exception, any BaseException, named in "
        "the message) or klconf itself failed (kind internal)",
    ),
    Term(
        "timeout",
        "the call did not return within the time limit (in Python, or its process was ended by the "
        "watchdog for a hang in C code)",
    ),
    Term(
        "crash",
        "the process running the check died (a segfault, os._exit, an abort): recorded by the process "
        "that writes the results, from the planned check",
    ),
    Term("xfail", "a failure that cases/expectations/ lists as known, with its reason"),
    Term("unsupported", "the API does not take this input (a dtype, broadcasting, a distribution pair it lacks)"),
    Term("skip", "the check cannot run here (a framework, module or device missing): the reason says which"),
)

FAILURE_KINDS = (
    Term("value", "a finite output outside the tolerance of the expected value"),
    Term("nan", "a NaN where the expected value is a number"),
    Term("inf", "an infinity where the expected value is finite"),
    Term("shape", "an output of another shape than the convention implies"),
    Term("complex", "an output of a complex dtype, even with every imaginary part zero (conformance/outputs.py)"),
    Term("integer", "an output of an integer dtype"),
    Term("boolean", "an output of a boolean dtype"),
    Term("non_numeric", "an output of an object, string or other non-numeric type"),
    Term("dtype", "a floating dtype other than the one fed, for an API declared to keep its input's dtype"),
    Term("alias", "an output that shares memory with an input"),
    Term("mutation", "the call changed an input it was fed"),
    Term("exception", "the API raised (an error verdict; the message names the exception's type)"),
    Term("internal", "klconf itself failed on this check (an error verdict: report it as a klconf bug)"),
    Term("timeout", "the time limit (with the timeout verdict)"),
    Term("crash", "the process died (with the crash verdict)"),
    Term("convention", "the inferred convention differs from the declared one (convention checks)"),
    Term("porting", "the composed equivalent differs from the source call on a case (porting checks)"),
)

CHECK_KINDS = (
    Term("value", "a case fed to one API call (options, device, dtype) against the oracle"),
    Term("gradient", "the API's autodiff gradient with respect to one argument against the analytic gradient"),
    Term("property", "a property a case lists (KL(P||P) = 0, non-negativity, ...) for one API"),
    Term("distribution", "a distribution pair built by one library against the closed form"),
    Term("convention", "an API call's conventions inferred from outputs alone, against its declaration"),
    Term("porting", "an API call's equivalent in another framework, verified on the corpus"),
)

VERDICT_NAMES = tuple(t.name for t in VERDICTS)
FAILING = ("fail", "error", "timeout", "crash")  # verdicts that make a run exit 1
FAILURE_KIND_NAMES = tuple(t.name for t in FAILURE_KINDS)
CHECK_KIND_NAMES = tuple(t.name for t in CHECK_KINDS)


def meaning(name: str, vocabulary: tuple[Term, ...] = VERDICTS) -> str:
    return next((t.meaning for t in vocabulary if t.name == name), "")
