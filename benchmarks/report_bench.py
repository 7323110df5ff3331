"""How fast a report of a large run is built and opens: `python benchmarks/report_bench.py [--records N]`.

Writes a synthetic results file shaped like a full run (cases x APIs x options x devices x
dtypes; mostly passes and skips, a few percent failures carrying reproduction snippets, some
convention records), then measures: reading it (sampled schema validation, and full validation
on a slice for comparison), building the page, its size, and, where headless Chromium is
installed, the time until the page's load event, until the report script has rendered, and
to apply a filter. A benchmark, not a test: it prints figures and asserts nothing.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from conformance import results  # noqa: E402
from conformance.report import aggregate, model, write_runset  # noqa: E402
from conformance.results import Record, Writer, jsonable, run_header  # noqa: E402
from conformance.runner import check_id  # noqa: E402

APIS = [("torch", "torch.nn.functional.kl_div", 8), ("torch", "torch.nn.KLDivLoss", 8),
        ("torch", "torch.nn.functional.cross_entropy-entropy", 3), ("jax", "jax.scipy.special.rel_entr", 1),
        ("jax", "jax.scipy.special.kl_div", 1), ("jax", "optax.kl_divergence", 1),
        ("jax", "optax.losses.kl_divergence_with_log_targets", 1), ("jax", "optax.generalized_kl_divergence", 1),
        ("tensorflow", "tf.keras.losses.KLDivergence", 10), ("tensorflow", "keras.losses.kl_divergence", 1),
        ("tensorflow", "tf.keras.metrics.KLDivergence", 2), ("tensorflow", "tf_keras.losses.KLDivergence", 8),
        ("scipy", "scipy.special.rel_entr", 1), ("scipy", "scipy.special.kl_div", 1), ("scipy", "scipy.stats.entropy", 2)]
DEVICES = ("cpu", "cuda")
DTYPES = ("float16", "bfloat16", "float32", "float64")
REPRO = "import numpy as np\nimport torch\n\ninput = np.array([[" + ", ".join(["-1.2039728043259361"] * 40) + \
    "]], dtype=np.float32)\n" * 4 + "result = torch.nn.functional.kl_div(input, target, reduction='sum')\n"


def synthetic(n: int, seed: int = 0) -> list[Record]:
    rng = random.Random(seed)
    combos = [(fw, api, opt, device, dtype) for fw, api, options in APIS for opt in range(options)
              for device in DEVICES for dtype in DTYPES]
    records = []
    case = 0
    while len(records) < n:
        for fw, api, opt, device, dtype in combos:
            if len(records) >= n:
                break
            options = {"reduction": f"r{opt}"} if opt else {}
            cid = check_id(f"case-{case:04d}", api, ",".join(f"{k}={v}" for k, v in options.items()), device, dtype)
            roll = rng.random()
            if device == "cuda" and fw == "tensorflow":
                verdict = "skip"
            elif roll < 0.05:
                verdict = "fail"
            elif roll < 0.06:
                verdict = "error"
            elif roll < 0.09:
                verdict = "unsupported"
            elif roll < 0.10:
                verdict = "xfail"
            else:
                verdict = "pass"
            rec = Record(check_id=cid, case_id=f"case-{case:04d}", case_hash=f"{case:016x}", api=api, framework=fw,
                         device=device, dtype=dtype, options=options, verdict=verdict, shape=[8, 5], tags=["batch"],
                         convention="(input=Q as log_prob, target=P as prob), p*log(p/q), reduction=sum")
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
            records.append(rec)
        case += 1
    return records


def write(path: Path, records: list[Record]) -> None:
    with Writer(path) as writer:
        writer.write(jsonable(run_header(argv=["klconf", "run"], corpus_hash="bench")))
        for fw in ("torch", "jax", "tensorflow", "scipy"):
            writer.write({"type": "framework", "name": fw, "versions": {fw: "1.0"}, "devices": ["cpu"], "settings": {}})
        for r in records:
            writer.write(r.to_json())
        writer.write({"type": "end", "exitstatus": 1, "counts": {}, "interrupted": False})


def timed(fn, repeat: int = 1):
    times, value = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - started)
    return value, statistics.median(times)


def browser_figures(index: Path, repeat: int) -> dict | None:
    sys.path.insert(0, str(ROOT))
    from tests.test_report_browser import Browser, unavailable

    reason = unavailable()
    if reason:
        print(f"browser: skipped ({reason})")
        return None
    loads, rendered, filtered = [], [], []
    with Browser() as browser:
        for _ in range(repeat):
            loads.append(browser.open(index))
            rendered.append(browser.evaluate("window.klconfReport.renderedAt") / 1000)
            started = time.perf_counter()
            browser.click("input[data-dim=fw][value=torch]")
            browser.evaluate("document.getElementById('filter-count').textContent")
            filtered.append(time.perf_counter() - started)
        errors = list(browser.console_errors)
    return {"load": statistics.median(loads), "rendered": statistics.median(rendered),
            "filter": statistics.median(filtered), "errors": errors}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", help="keep the files here (default: a temporary folder)")
    args = parser.parse_args()
    folder = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="klconf-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.jsonl"
    records = synthetic(args.records)
    write(path, records)
    failing = sum(r.failed for r in records)
    print(f"{len(records):,} records ({failing:,} failing), results file {path.stat().st_size / 1e6:.1f} MB")

    runset, t_read = timed(lambda: model.load([path]), args.repeat)
    print(f"read, sampled schema validation: {t_read:.2f} s")
    _, t_none = timed(lambda: results.read(path, validate="none"), args.repeat)
    print(f"read, no validation:            {t_none:.2f} s")
    sample = folder / "slice.jsonl"
    write(sample, records[:10_000])
    _, t_all = timed(lambda: results.read(sample, validate="all"))
    print(f"read, full validation:          {t_all:.2f} s for 10,000 records "
          f"(≈ {t_all * len(records) / 10_000:.0f} s for {len(records):,})")
    _, t_agg = timed(lambda: aggregate.build(runset), args.repeat)
    print(f"aggregate:                      {t_agg:.2f} s")
    index, t_page = timed(lambda: write_runset(runset, folder / "report"), args.repeat)
    print(f"aggregate + render + write:     {t_page:.2f} s")
    print(f"report generation end to end:   {t_read + t_page:.2f} s; index.html {index.stat().st_size / 1e6:.1f} MB")
    figures = browser_figures(index, args.repeat)
    if figures:
        print(f"chromium: load event after {figures['load']:.2f} s, report rendered at {figures['rendered']:.2f} s "
              f"after navigation start, a framework filter applied in {figures['filter'] * 1000:.0f} ms; "
              f"console errors: {figures['errors'] or 'none'}")
    print(f"files in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
