"""JUnit XML for CI systems: one testsuite per framework and device, one testcase per check.

pass is a plain testcase; xfail, unsupported and skip are <skipped> with a message saying
which and why; fail is a <failure>, and error, timeout and crash are <error>. Messages carry
the observed error figures (abs, rel, ULP, tolerance, headroom) so a CI summary shows how far
off a value was without opening the report. Any other verdict is reported as an <error>.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path

from .aggregate import error_figures, framework_order, option_label, values_text
from .model import RunSet

SKIPPED = ("xfail", "unsupported", "skip")
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def clean(text: str) -> str:
    """XML 1.0 cannot hold most control characters, even escaped: drop them."""
    return _XML_ILLEGAL.sub("", str(text))


def to_xml(runset: RunSet, name: str = "klconf") -> ET.ElementTree:
    suites: dict[tuple[str, str], list] = defaultdict(list)
    for r in runset.records:
        suites[(r.framework, r.device)].append(r)
    root = ET.Element("testsuites", name=name)
    totals: Counter[str] = Counter()
    for fw, device in sorted(suites, key=lambda k: (framework_order(k[0]), k[1])):
        records = suites[(fw, device)]
        suite = ET.SubElement(root, "testsuite", name=f"klconf.{fw}.{device}")
        counts: Counter[str] = Counter()
        for r in records:
            counts[_bucket(r.verdict)] += 1
            suite.append(_testcase(r))
        attrs = {
            "tests": len(records),
            "failures": counts["failure"],
            "errors": counts["error"],
            "skipped": counts["skipped"],
            "time": f"{sum(r.duration_s for r in records):.3f}",
        }
        for key, value in attrs.items():
            suite.set(key, str(value))
        totals.update(counts)
        totals["tests"] += len(records)
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(totals[{"failures": "failure", "errors": "error"}.get(key, key)]))
    if not runset.complete:
        props = ET.SubElement(root, "properties")
        ET.SubElement(
            props,
            "property",
            name="incomplete",
            value=clean(
                "; ".join(
                    f"{s.path}: {', '.join(s.incomplete_reasons)}" for s in runset.sources if s.incomplete_reasons
                )
            ),
        )
    return ET.ElementTree(root)


def _bucket(verdict: str) -> str:
    if verdict == "pass":
        return "passed"
    if verdict in SKIPPED:
        return "skipped"
    if verdict == "fail":
        return "failure"
    return "error"


def _testcase(r) -> ET.Element:
    options = option_label(r.options)
    case = ET.Element(
        "testcase",
        classname=clean(f"klconf.{r.framework}.{r.api}"),
        name=clean(f"{r.case_id}[{options}]::{r.device}::{r.dtype}" + ("" if r.check == "value" else f" ({r.check})")),
        time=f"{r.duration_s:.4f}",
    )
    bucket = _bucket(r.verdict)
    if bucket == "skipped":
        ET.SubElement(case, "skipped", message=clean(f"{r.verdict}: {r.reason or r.message}"))
    elif bucket in ("failure", "error"):
        figures = error_figures(r)
        message = f"{r.verdict}" + (f" ({r.kind})" if r.kind else "") + f": {r.message or r.reason}"
        if figures:
            message += f" [{figures}]"
        element = ET.SubElement(case, bucket, message=clean(message[:4000]), type=clean(r.kind or r.verdict))
        element.text = clean(_body(r))
    return case


def _body(r) -> str:
    lines = [
        f"check: {r.check_id}",
        f"expected: {values_text(r.expected, 1000)}",
        f"observed: {values_text(r.observed, 1000)}",
    ]
    for label, value in (
        ("error", error_figures(r)),
        ("diagnosis", r.diagnosis),
        ("convention", r.convention),
        ("tolerance override", r.tolerance_override),
    ):
        if value:
            lines.append(f"{label}: {value}")
    if r.extra.get("traceback"):
        lines += ["", str(r.extra["traceback"])[-3000:]]
    if r.extra.get("repro"):
        lines += ["", "reproduce:", str(r.extra["repro"])[:20000]]
    return "\n".join(lines)


def write(runset: RunSet, path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tree = to_xml(runset)
    ET.indent(tree, space=" ")
    tree.write(path, encoding="utf-8", xml_declaration=True)
    return path
