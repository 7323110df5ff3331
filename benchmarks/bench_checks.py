"""Benchmark: klconf's checks per second against the floor of the same work done by hand.

The floor is what any conformance run must pay: importing the frameworks and calling each API
once per check on ready-made inputs (the first call, which includes compilation and warm-up; the
median of later calls is reported too). The suite is `klconf run` on the same checks (value checks,
one process, no xdist, a warm oracle cache so the mpmath work is not counted twice; pass --cold
to include it). Both are measured in this one invocation, each in a fresh interpreter:

    python benchmarks/bench_checks.py [--framework torch ...] [--cases forum-example,...] [--cold]

It prints checks per second, the floor, the suite's time and their ratio. A benchmark, not a test.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CASES = "forum-example,canonical-2x3,dirichlet-8x5,dirichlet-16x64,sequence-2x3x5,wide-3x1000"

FLOOR = r'''
import json, statistics, sys, time
t0 = time.perf_counter()
from conformance import cases, frameworks, runner
from conformance.runner import declared, fed_arguments, feed_axis, weights_for
import numpy as np
names, case_ids, dtype = sys.argv[1].split(","), sys.argv[2].split(","), sys.argv[3]
apis = [a for a in frameworks.builtin_apis(names) if not a.missing()]
chosen = [c for c in cases.load_cases() if c.id in case_ids]
checks = runner.plan(chosen, apis, devices=["cpu"], dtypes=[dtype])
t_import = time.perf_counter()
handles = {n: frameworks.binding(n).handle() for n in names}
t_import = time.perf_counter() - t_import
calls = []
for check in checks:
    b = frameworks.binding(check.api.framework)
    fw = handles[check.api.framework]
    if check.dtype not in check.api.dtypes or (check.case.broadcast and not check.api.broadcasts):
        continue
    conv = declared(check)
    axis = feed_axis(conv.class_axis, len(check.case.shape))
    args = fed_arguments(check.case, conv, check.dtype)
    ctx = b.call_context(fw, check.dtype, "cpu") if b.call_context else None
    w = weights_for(check.case.shape) if check.options.get("sample_weight") else None
    def once():
        native = [b.to_native(fw, a if axis is None else np.moveaxis(a, -1, axis), check.dtype, "cpu") for a in args]
        nw = b.to_native(fw, w, check.dtype, "cpu") if w is not None else None
        return b.to_numpy(fw, check.api.call(fw, native[0], native[1], check.options, nw))
    times = []
    for _ in range(8):
        if ctx is not None:
            with b.call_context(fw, check.dtype, "cpu"):
                s = time.perf_counter(); once(); times.append(time.perf_counter() - s)
        else:
            s = time.perf_counter(); once(); times.append(time.perf_counter() - s)
    calls.append((times[0], statistics.median(times[1:])))  # the first call compiles or warms caches
print(json.dumps({"import_s": t_import, "calls": len(calls), "first_call_s": sum(c[0] for c in calls),
                  "warm_call_s": sum(c[1] for c in calls), "setup_s": time.perf_counter() - t0}))
'''


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", action="append", default=[])
    parser.add_argument("--cases", default=DEFAULT_CASES)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--cold", action="store_true", help="include the oracle's first computation")
    args = parser.parse_args()
    names = args.framework or [n for n in ("torch", "jax", "tensorflow", "scipy") if _installed(n)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryDirectory() as tmp:
        env["KLCONF_CACHE_DIR"] = str(Path(tmp) / "cache")
        selection = " or ".join(args.cases.split(","))
        run_args = [sys.executable, "-m", "conformance", "run", "--no-report", "-n", "0", "--device", "cpu",
                    "--check", "value", "--dtype", args.dtype, "-k", selection, "--out", tmp, "--expectations", "none"]
        run_args += [f"--framework={n}" for n in names]
        if not args.cold:  # fill the oracle's disk cache first, as any second run on a machine has it
            subprocess.run(run_args, cwd=ROOT, env=env, capture_output=True)
        start = time.perf_counter()
        suite = subprocess.run(run_args, cwd=ROOT, env=env, capture_output=True, text=True)
        suite_s = time.perf_counter() - start
        results = [json.loads(line) for line in (Path(tmp) / "results.jsonl").read_text().splitlines()]
        executed = [r for r in results if r["type"] == "check" and r["verdict"] not in ("skip", "unsupported")]
        floor = json.loads(subprocess.run([sys.executable, "-c", FLOOR, ",".join(names), args.cases, args.dtype],
                                          cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout)
    floor_s = floor["import_s"] + floor["first_call_s"]  # one pass: import, then each call once
    report = {
        "frameworks": names, "dtype": args.dtype, "oracle_cache": "cold" if args.cold else "warm",
        "checks": len(executed), "suite_s": round(suite_s, 3), "checks_per_s": round(len(executed) / suite_s, 1),
        "floor_import_s": round(floor["import_s"], 3), "floor_calls": floor["calls"],
        "floor_first_call_s": round(floor["first_call_s"], 3), "floor_warm_call_s": round(floor["warm_call_s"], 3),
        "floor_s": round(floor_s, 3),
        "ratio_suite_to_floor": round(suite_s / floor_s, 2),
        "overhead_per_check_ms": round(1000 * (suite_s - floor_s) / max(len(executed), 1), 2),
    }
    print(json.dumps(report, indent=2))
    if suite.returncode not in (0, 1):
        print(suite.stdout[-2000:], file=sys.stderr)
    return 0


def _installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


if __name__ == "__main__":
    raise SystemExit(main())
