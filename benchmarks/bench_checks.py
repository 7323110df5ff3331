"""Benchmark: the suite's wall time against its floor, over the whole default corpus, in one invocation.

The floor is what any conformance run must pay: importing the frameworks, then calling each API once per
planned check on ready-made inputs, one process -- for a value check the call, for a gradient check the
framework's gradient of the summed output (through the binding, as klconf does: one call for both arguments
where klconf makes one, `Binding.gradients`), for a property check one
call (property checks make one or more: the floor is a lower bound). The suite is `klconf run` over the
same checks (value, gradient and property; every installed framework; the CPU; an empty oracle cache, so
the oracle's work is counted), each in a fresh interpreter.

The floor runs twice, once before the suite and once after it, and the ratio is taken against their mean:
the project's machine drifts by tens of percent over an hour (another tenant's load), and a floor measured
only on one side of a 13-minute suite carries that drift into the ratio. The report gives both floors and
their difference, so a ratio taken while the machine drifted says so (`--floor-runs 1`: after only).

Both sides start from the same caches. Cold (the default), each gets its own empty KLCONF_CACHE_DIR: the
suite's oracle starts empty, and so does JAX's persistent compilation cache (kept in that folder), for the
suite and for the floor alike, since a framework's first compile of a shape is part of calling it on a
fresh machine. (Run after the suite on the suite's folder, the floor would find every program the suite
compiled and be cheaper than any cold run can be.) With --warm, a first suite run fills the folder and
the measured suite and the floor both read it. Python's bytecode is warm for both: a small untimed run
of every framework and kind writes the .pyc of every module either side imports, with
PYTHONDONTWRITEBYTECODE unset (a process that cannot write them compiles its imports every time).

    python benchmarks/bench_checks.py [--framework torch ...] [--cases forum-example,...] [--dtype float32 ...]
                                      [--workers N] [--warm] [--keep RESULTS] [--floor-runs 1|2]

Without --cases it covers the whole default corpus. It prints checks per second, the floor, the suite's
time and their ratio (the target is <= 1.3). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("value", "gradient", "property")

FLOOR = r"""
import contextlib, json, sys, time
t0 = time.perf_counter()
from conformance import cases, frameworks, gradients, properties, runner
from conformance.runner import declared, fed_arguments, feed_axis, weights_for
import numpy as np
names, case_ids, dtypes = sys.argv[1].split(","), sys.argv[2], sys.argv[3].split(",")
apis = [a for a in frameworks.builtin_apis(names) if not a.missing()]
chosen = [c for c in cases.load_cases() if case_ids == "*" or c.id in case_ids.split(",")]
planned = [(kind, c) for kind, module in (("value", runner), ("gradient", gradients), ("property", properties))
           for c in module.plan(chosen, apis, devices=["cpu"], dtypes=dtypes)]
t_import = time.perf_counter()
handles = {n: frameworks.binding(n).handle() for n in names}
t_import = time.perf_counter() - t_import
calls, seconds = 0, 0.0
by_part = {}  # (framework, kind) -> call seconds
functions = {}  # what a gradient differentiates, made once per key (below)


def differentiated(fw, api, options):
    weights = {}
    return (lambda x, y: api.call(fw, x, y, options, weights["w"])), weights


served = set()  # gradient checks whose gradient came with their sibling's, in one call (as klconf shares it)
for at, (kind, check) in enumerate(planned):
    b, fw, api = frameworks.binding(check.api.framework), handles[check.api.framework], check.api
    if check.dtype not in api.dtypes or (check.case.broadcast and not api.broadcasts) or at in served:
        continue
    conv = declared(check)
    axis = feed_axis(conv.class_axis, len(check.case.shape))
    fed = fed_arguments(check.case, conv, check.dtype)
    w = weights_for(check.case.shape) if check.options.get("sample_weight") else None
    context = b.call_context(fw, check.dtype, "cpu") if b.call_context else contextlib.nullcontext()
    with context:
        native = [b.to_native(fw, a if axis is None else np.moveaxis(a, -1, axis), check.dtype, "cpu") for a in fed]
        nw = b.to_native(fw, w, check.dtype, "cpu") if w is not None else None
        start = time.perf_counter()
        try:
            if kind == "gradient":
                # one function per API call, options, dtype and weights' shape, as klconf differentiates
                # (gradients._differentiated): a framework that compiles it (JAX) compiles once per shape
                key = (api.name, id(api.call), check.options_items, check.dtype, None if w is None else w.shape)
                if key not in functions:
                    functions[key] = differentiated(fw, api, check.options)
                fn, weights = functions[key]
                weights["w"] = nw
                following = planned[at + 1][1] if at + 1 < len(planned) else None
                index = conv.arguments.index(check.wrt)
                if b.gradients is not None and gradients._sibling(check, following, b) is not None:
                    out = b.gradients(fw, fn, native, (index, conv.arguments.index(following.wrt)))
                    b.to_numpy(fw, out[1])
                    out = out[0]
                    served.add(at + 1)
                else:
                    out = b.gradient(fw, fn, native, index)
            else:
                out = api.call(fw, native[0], native[1], check.options, nw)
            b.to_numpy(fw, out)
        except Exception:  # an API that refuses the input costs what it took to refuse
            pass
        took = time.perf_counter() - start
        seconds += took
        calls += 1
        part = f"{check.api.framework} {kind}"
        by_part[part] = by_part.get(part, 0.0) + took
print(json.dumps({"import_s": t_import, "calls": calls, "call_s": seconds, "setup_s": time.perf_counter() - t0,
                  "by_part": by_part}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", action="append", default=[])
    parser.add_argument("--cases", default="*", help="comma-separated case ids (default: the whole corpus)")
    parser.add_argument("--dtype", action="append", default=[], help="default: every dtype")
    parser.add_argument("--workers", default="0", help="klconf run -n (default 0: one process, like the floor)")
    parser.add_argument("--warm", action="store_true", help="fill the oracle's cache first (default: cold)")
    parser.add_argument("--keep", metavar="FILE", help="copy the suite's results.jsonl here")
    parser.add_argument(
        "--floor-runs", type=int, choices=(1, 2), default=2, help="2 (default): before and after the suite; 1: after"
    )
    args = parser.parse_args()
    names = args.framework or _installed_frameworks()
    dtypes = args.dtype or ["float16", "bfloat16", "float32", "float64"]
    # .pyc files are a cache too: with PYTHONDONTWRITEBYTECODE set (as many containers set it) and a stack
    # installed without them (tox.ini), every process compiles each module it imports, the floor's one
    # process and the suite's several alike (one such run read a ratio of 1.32; the same code an hour later,
    # with bytecode, 1.58; the floor's imports took 26.4 s against 11.6). So both sides write and read
    # bytecode, as tox's runs do
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    with tempfile.TemporaryDirectory() as tmp:
        env["KLCONF_CACHE_DIR"] = str(Path(tmp) / "cache")
        run_args = [
            sys.executable,
            "-m",
            "conformance",
            "run",
            "--no-report",
            "--no-progress",
            "-n",
            args.workers,
            "--device",
            "cpu",
            "--out",
            tmp,
            "--expectations",
            "none",
        ]
        run_args += [f"--check={k}" for k in KINDS] + [f"--framework={n}" for n in names]
        run_args += [f"--dtype={d}" for d in dtypes]
        if args.cases != "*":
            run_args += ["-k", " or ".join(args.cases.split(","))]
        # before anything is timed, one small run of every framework and kind (its own oracle cache) writes the
        # bytecode of every module either side imports: otherwise whichever side runs first compiles the stack
        smallest = _smallest_case()
        subprocess.run(
            [*run_args, "-k", smallest],
            cwd=ROOT,
            env={**env, "KLCONF_CACHE_DIR": str(Path(tmp) / "bytecode")},
            capture_output=True,
        )
        if args.warm:
            subprocess.run(run_args, cwd=ROOT, env=env, capture_output=True)
        floor_args = (names, args.cases, dtypes, env, tmp, args.warm)
        floors = [_floor(*floor_args, "before")] if args.floor_runs == 2 else []
        start, cpu_before = time.perf_counter(), _children_cpu()
        suite = subprocess.run(run_args, cwd=ROOT, env=env, capture_output=True, text=True)
        suite_s, suite_cpu_s = time.perf_counter() - start, _children_cpu() - cpu_before
        records = [json.loads(line) for line in (Path(tmp) / "results.jsonl").read_text().splitlines()]
        executed = [r for r in records if r["type"] == "check" and r["verdict"] not in ("skip", "unsupported")]
        if args.keep:
            Path(args.keep).write_text((Path(tmp) / "results.jsonl").read_text())
        floors.append(_floor(*floor_args, "after"))
    floor = {key: sum(f[key] for f in floors) / len(floors) for key in ("import_s", "call_s", "process_s", "cpu_s")}
    floor["calls"] = floors[-1]["calls"]
    floor["by_part"] = {
        part: sum(f["by_part"].get(part, 0.0) for f in floors) / len(floors) for part in floors[-1]["by_part"]
    }
    floor_process_s, floor_cpu_s = floor["process_s"], floor["cpu_s"]
    floor_s = floor["import_s"] + floor["call_s"]
    each = [round(f["import_s"] + f["call_s"], 3) for f in floors]
    report = {
        "frameworks": names,
        "dtypes": dtypes,
        "cases": args.cases,
        "workers": args.workers,
        "caches": "warm" if args.warm else "cold",  # the oracle's and JAX's compilation cache, both sides
        "bytecode": "written before timing",  # .pyc files, both sides (above)
        "checks": len(executed),
        "suite_s": round(suite_s, 3),
        "checks_per_s": round(len(executed) / suite_s, 1),
        "floor_import_s": round(floor["import_s"], 3),
        "floor_calls": floor["calls"],
        "floor_call_s": round(floor["call_s"], 3),
        "floor_s": round(floor_s, 3),  # the mean of the floors measured (below)
        "floor_runs_s": dict(zip(["before", "after"] if len(floors) == 2 else ["after"], each)),
        # how far the machine drifted while the suite ran: the floor after against the floor before
        "floor_drift": round(each[-1] / each[0] - 1, 3) if len(each) == 2 else None,
        "ratio_suite_to_floor": round(suite_s / floor_s, 2),
        # on a shared machine wall time waits for other work: CPU seconds (user + system) compare more steadily
        "suite_cpu_s": round(suite_cpu_s, 3),
        "floor_process_wall_s": round(floor_process_s, 3),
        "floor_process_cpu_s": round(floor_cpu_s, 3),
        "cpu_ratio_suite_to_floor_process": round(suite_cpu_s / floor_cpu_s, 2) if floor_cpu_s else None,
        "overhead_per_check_ms": round(1000 * (suite_s - floor_s) / max(len(executed), 1), 2),
        # where each side's time goes: the suite's summed check durations (each includes its oracle work,
        # judging and recording) against the floor's calls, per framework and kind of check
        "by_part_suite_check_s_vs_floor_call_s": _by_part(executed, floor["by_part"]),
    }
    print(json.dumps(report, indent=2))
    if suite.returncode not in (0, 1):
        print(suite.stdout[-2000:], file=sys.stderr)
    return 0


def _floor(names: list[str], cases: str, dtypes: list[str], env: dict, tmp: str, warm: bool, label: str) -> dict:
    """One floor run in a fresh interpreter: its report, with its process's wall and CPU seconds. Cold, each
    floor run gets an empty cache folder of its own (JAX's compiles are part of a first call)."""
    floor_env = env if warm else {**env, "KLCONF_CACHE_DIR": str(Path(tmp) / f"floor-cache-{label}")}
    start, cpu_before = time.perf_counter(), _children_cpu()
    floor = json.loads(
        subprocess.run(
            [sys.executable, "-c", FLOOR, ",".join(names), cases, ",".join(dtypes)],
            cwd=ROOT,
            env=floor_env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    floor["process_s"], floor["cpu_s"] = time.perf_counter() - start, _children_cpu() - cpu_before
    return floor


def _by_part(executed: list[dict], floor_by_part: dict[str, float]) -> dict[str, list[float]]:
    suite_by_part: dict[str, float] = {}
    for record in executed:
        part = f"{record['framework']} {record['check']}"
        suite_by_part[part] = suite_by_part.get(part, 0.0) + (record.get("duration_s") or 0.0)
    parts = sorted(set(suite_by_part) | set(floor_by_part), key=lambda p: -suite_by_part.get(p, 0.0))
    return {p: [round(suite_by_part.get(p, 0.0), 1), round(floor_by_part.get(p, 0.0), 1)] for p in parts}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _smallest_case() -> str:
    """The id of the corpus's smallest tensor-level case (ties: the first), for the bytecode run."""
    from conformance import cases

    return min(cases.load_cases(), key=lambda c: math.prod(c.shape)).id


def _installed_frameworks() -> list[str]:
    """Every framework of klconf's registry that is installed here (checked without importing it)."""
    from conformance import frameworks

    return [name for name in frameworks.FRAMEWORKS if frameworks.binding(name).available() is None]


if __name__ == "__main__":
    raise SystemExit(main())
