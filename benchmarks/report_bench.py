"""How fast a report of a large run is built and opens: `python benchmarks/report_bench.py [--records N ...]`.

For each size (default 100,000 and 1,000,000 checks) it writes a synthetic results file shaped like a
full run (cases x APIs x options x devices x dtypes; mostly passes and skips, a few percent failures
carrying reproduction snippets), streamed to disk as it is generated, then measures:

- `klconf report` end to end in a fresh process (start-up, reading, aggregation, rendering, writing):
  wall time and the process's peak resident memory;
- the page: its size; in headless Chromium (driven by Playwright, tests/browser.py) the time from
  navigation to the first contentful paint (the overview, rendered on the server, shows), to the load
  event, and to when the report's script had rendered the matrix and failure list, and how long
  applying a framework filter takes (the script's work); medians of --repeat.

A benchmark, not a test: it prints figures and asserts nothing. Targets: 100k checks in <= 3 s, 1M in
<= 30 s with memory well below the machine's, the page open in under a second at any size.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from conformance.kinds import check_id  # noqa: E402
from conformance.results import Record, jsonable, run_header  # noqa: E402

APIS = [
    ("torch", "torch.nn.functional.kl_div", 8),
    ("torch", "torch.nn.KLDivLoss", 8),
    ("torch", "torch.nn.functional.cross_entropy-entropy", 3),
    ("jax", "jax.scipy.special.rel_entr", 1),
    ("jax", "jax.scipy.special.kl_div", 1),
    ("jax", "optax.kl_divergence", 1),
    ("jax", "optax.losses.kl_divergence_with_log_targets", 1),
    ("jax", "optax.generalized_kl_divergence", 1),
    ("tensorflow", "tf.keras.losses.KLDivergence", 10),
    ("tensorflow", "keras.losses.kl_divergence", 1),
    ("tensorflow", "tf.keras.metrics.KLDivergence", 2),
    ("tensorflow", "tf_keras.losses.KLDivergence", 8),
    ("scipy", "scipy.special.rel_entr", 1),
    ("scipy", "scipy.special.kl_div", 1),
    ("scipy", "scipy.stats.entropy", 2),
]
DEVICES = ("cpu", "cuda")
DTYPES = ("float16", "bfloat16", "float32", "float64")
REPRO = (
    "import numpy as np\nimport torch\n\ninput = np.array([["
    + ", ".join(["-1.2039728043259361"] * 40)
    + "]], dtype=np.float32)\n" * 4
    + "result = torch.nn.functional.kl_div(input, target, reduction='sum')\n"
)


def synthetic(n: int, seed: int = 0):
    """n records like a full run's, one at a time (a million never sit in memory together)."""
    rng = random.Random(seed)
    combos = [
        (fw, api, opt, device, dtype)
        for fw, api, options in APIS
        for opt in range(options)
        for device in DEVICES
        for dtype in DTYPES
    ]
    made, case = 0, 0
    while made < n:
        for fw, api, opt, device, dtype in combos:
            if made >= n:
                return
            made += 1
            yield _record(rng, f"case-{case:05d}", fw, api, opt, device, dtype)
        case += 1


def _record(rng: random.Random, case: str, fw: str, api: str, opt: int, device: str, dtype: str) -> Record:
    options = {"reduction": f"r{opt}"} if opt else {}
    roll = rng.random()
    if device == "cuda" and fw == "tensorflow":
        verdict = "skip"
    else:
        verdict = (
            "fail"
            if roll < 0.05
            else "error"
            if roll < 0.06
            else "unsupported"
            if roll < 0.09
            else "xfail"
            if roll < 0.10
            else "pass"
        )
    rec = Record(
        check_id=check_id(case, api, ",".join(f"{k}={v}" for k, v in options.items()), device, dtype),
        case_id=case,
        case_hash=f"{hash(case) & 0xFFFFFFFF:016x}",
        api=api,
        framework=fw,
        device=device,
        dtype=dtype,
        options=options,
        verdict=verdict,
        shape=[8, 5],
        tags=["batch"],
        convention="(input=Q as log_prob, target=P as prob), p*log(p/q), reduction=sum",
    )
    if verdict in ("pass", "fail", "xfail"):
        err = 10 ** rng.uniform(-9, -3)
        rec.abs_error, rec.rel_error, rec.ulp_error = err, err * 3, 10 ** rng.uniform(-1, 3)
        rec.tolerance = 1e-5
        rec.headroom = err / 1e-5 * (40 if verdict == "fail" else 0.05)
        rec.expected = [rng.random() for _ in range(8)]
        rec.observed = [v + err for v in rec.expected]
    if verdict in ("fail", "error"):
        rec.kind = "value" if verdict == "fail" else "exception"
        rec.message = "8 of 8 values differ; at [3]: expected 0.25, observed 0.2502 (|diff| 2e-4, rel 8e-4)"
        rec.diagnosis = "observed values match the declared convention with reduction=mean_all"
        rec.extra = {"repro": REPRO}
    if verdict in ("skip", "unsupported", "xfail"):
        rec.reason = f"{fw} sees no {device} device" if verdict == "skip" else "not supported"
    return rec


def write(path: Path, n: int) -> int:
    """Write the synthetic results file; return how many checks fail. The records hold only finite numbers,
    so each is dumped as it is (orjson where installed), not through `Record.to_json`'s conversion."""
    try:
        from orjson import dumps
    except ImportError:

        def dumps(event: dict) -> bytes:
            return json.dumps(event, allow_nan=False, separators=(",", ":")).encode()

    failing = 0
    with open(path, "wb") as out:
        events = [jsonable(run_header(argv=["klconf", "run"], corpus_hash="bench"))]
        events += [
            {"type": "framework", "name": fw, "versions": {fw: "1.0"}, "devices": ["cpu"], "settings": {}}
            for fw in ("torch", "jax", "tensorflow", "scipy")
        ]
        out.writelines(dumps(event) + b"\n" for event in events)
        for r in synthetic(n):
            failing += r.failed
            out.write(dumps({"type": "check", **vars(r)}) + b"\n")
        out.write(dumps({"type": "end", "exitstatus": 1, "counts": {}, "interrupted": False}) + b"\n")
    return failing


def report_process(results: Path, out: Path) -> tuple[float, float, float]:
    """`klconf report` in a fresh process: wall seconds, CPU seconds (user + system) and peak resident MiB
    of that process (from wait4). On a shared machine the CPU time is the steadier figure."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "conformance", "report", str(results), "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(f"klconf report exited with status {process.returncode}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


FILTER = """() => {
  const box = document.querySelector("input[data-dim=fw][value=torch]");
  const started = performance.now();
  box.click();
  const took = performance.now() - started;
  box.click();
  return [took, document.getElementById("filter-count").textContent];
}"""


def browser_figures(index: Path, repeat: int) -> dict | str:
    from tests.browser import open_page, unavailable

    reason = unavailable()
    if reason:
        return reason
    painted, loads, rendered, filters, problems = [], [], [], [], []
    for _ in range(repeat):
        with open_page(index, timeout_ms=120_000) as watched:
            timing = watched.page.evaluate("() => performance.getEntriesByType('navigation')[0].toJSON()")
            paint = watched.page.evaluate(
                "() => performance.getEntriesByName('first-contentful-paint').map(e => e.startTime)[0] || null"
            )
            painted.append(paint / 1000 if paint is not None else math.nan)
            loads.append(timing["loadEventEnd"] / 1000)
            rendered.append(watched.page.evaluate("window.klconfReport.renderedAt") / 1000)
            took, _ = watched.page.evaluate(FILTER)
            filters.append(took / 1000)
            problems += watched.problems
    return {
        "painted": statistics.median(painted),
        "load": statistics.median(loads),
        "rendered": statistics.median(rendered),
        "filter": statistics.median(filters),
        "problems": problems,
    }


def measure(n: int, folder: Path, repeat: int, report_repeat: int = 1) -> None:
    path = folder / f"results-{n}.jsonl"
    if path.exists():  # a folder kept with --out: the same seed writes the same file
        print(f"{n:,} checks: results file {path.stat().st_size / 1e6:.0f} MB (reused)")
    else:
        started = time.perf_counter()
        failing = write(path, n)
        print(
            f"{n:,} checks ({failing:,} failing): results file {path.stat().st_size / 1e6:.0f} MB, "
            f"written in {time.perf_counter() - started:.1f} s"
        )
    out = folder / f"report-{n}"
    runs = [report_process(path, out) for _ in range(report_repeat)]
    wall, cpu, peak = (statistics.median(run[i] for run in runs) for i in range(3))
    index = out / "index.html"
    fastest = f" (fastest {min(run[0] for run in runs):.2f} s)" if len(runs) > 1 else ""
    print(
        f"  klconf report end to end:  {wall:.2f} s wall{fastest}, {cpu:.2f} s CPU, peak memory {peak:.0f} MiB; "
        f"index.html {index.stat().st_size / 1e6:.1f} MB"
    )
    figures = browser_figures(index, repeat)
    if isinstance(figures, str):
        print(f"  chromium: skipped ({figures})")
    else:
        print(
            f"  chromium: overview painted {figures['painted']:.2f} s after navigation, load event "
            f"{figures['load']:.2f} s, matrix and failures rendered at "
            f"{figures['rendered']:.2f} s, a framework filter applied in {figures['filter'] * 1000:.0f} ms; "
            f"problems: {figures['problems'] or 'none'}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3, help="browser measurements per size (median)")
    parser.add_argument(
        "--report-repeat",
        type=int,
        default=1,
        help="klconf report runs per size (median; on a shared machine the fastest is shown too)",
    )
    parser.add_argument("--out", help="keep the files here (default: a temporary folder)")
    args = parser.parse_args()
    folder = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="klconf-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    for n in args.records:
        measure(n, folder, args.repeat, args.report_repeat)
    print(f"files in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
