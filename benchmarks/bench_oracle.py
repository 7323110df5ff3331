"""Time the oracle alone, cold (no disk cache, a fresh process), on the corpus's large cases.

    PYTHONPATH=. python benchmarks/bench_oracle.py [--case large-vocab-2x262144] [--dtype float32]

For each case: the float64 values rounded to the dtype as an API is fed them, in the case's own
spaces, then per-row KL (the first evaluation of the elementwise terms), the elementwise terms
(reused), a batch mean and the gradient with respect to Q, each timed once. Prints one JSON line
per case with the seconds and the largest certified bound relative to the values' magnitude (where
the oracle reports bounds).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from conformance import oracle
from conformance.cases import load_corpus
from conformance.dtypes import round_to

DEFAULT_CASES = ("large-vocab-4x32768", "large-vocab-2x262144")


def _relative_bound(exp) -> float | None:
    bound = getattr(exp, "bound", None)
    if bound is None:
        return None
    scale = np.abs(np.asarray(exp.magnitude)) + np.abs(np.asarray(exp.value))
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.nanmax(np.asarray(bound) / np.where(scale > 0, scale, np.nan), initial=0.0))


def bench(case, dtype: str) -> dict:
    p = round_to(case.p.values, dtype).astype(np.float64)
    q = round_to(case.q.values, dtype).astype(np.float64)
    p, q = np.broadcast_arrays(p, q)
    spaces = {"p_space": oracle.space_name(case.p.space), "q_space": oracle.space_name(case.q.space)}
    runs = {
        "per_row": lambda: oracle.expected(p, q, oracle.Spec(reduction="per_row", **spaces)),
        "elementwise": lambda: oracle.expected(p, q, oracle.Spec(reduction="none", **spaces)),
        "mean_batch": lambda: oracle.expected(p, q, oracle.Spec(reduction="mean_batch", **spaces)),
        "gradient_q": lambda: oracle.gradient(p, q, oracle.Spec(reduction="sum", **spaces), "q"),
    }
    out: dict = {"case": case.id, "shape": list(p.shape), "dtype": dtype}
    for name, run in runs.items():
        started = time.perf_counter()
        result = run()
        out[f"{name}_s"] = round(time.perf_counter() - started, 4)
        out[f"{name}_relative_bound"] = _relative_bound(result)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", help="case id (repeatable); default: the two largest")
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()
    os.environ["KLCONF_CACHE_DIR"] = "off"  # cold: every value computed here, none read from disk (read at each use)
    wanted = args.case or list(DEFAULT_CASES)
    cases, _ = load_corpus(None)
    for case in cases:
        if case.id in wanted:
            print(json.dumps(bench(case, args.dtype)), flush=True)


if __name__ == "__main__":
    main()
