"""Saving findings: a case per finding, a draft expectation entry, a reproduction snippet, a JSON summary.

Tensor-level findings go to cases/explored/tensor.yaml (a `cases` document), distribution findings to
cases/explored/distributions.yaml (`distribution_cases`); both loaders read cases/ recursively, so
`klconf run` and `klconf cases check` pick them up as they are. Before anything is written, each
finding is run once more under its final case id: a finding that does not reproduce is not saved.
The expected values come from the same functions `klconf cases fill` uses. Draft expectation entries
(cases/expectations/explored.yaml) claim exactly the failing check; they are drafts: their status and
reason say what was observed, and a person confirms the mechanism before committing them.
Plug-in APIs get no draft entry (the shipped manifests describe the built-in APIs only).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import yaml

from .. import frameworks, stored
from ..cases import DEFAULT_CASES_DIR
from ..distributions import cases as distribution_cases
from ..distributions import stored as distribution_stored
from ..results import jsonable
from .pairs import DistributionTarget
from .search import Found, Search
from .snippets import distribution_snippet
from .targets import FAILING, build_case, example_digest

EXPLORED_DIR = DEFAULT_CASES_DIR / "explored"
EXPECTATIONS_FILE = DEFAULT_CASES_DIR / "expectations" / "explored.yaml"
TENSOR_FILE, DISTRIBUTION_FILE = "tensor.yaml", "distributions.yaml"


def case_id(found: Found) -> str:
    """Stable and readable: the API, the kind of check and a digest of the shrunk example."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", found.target.api.lower()).strip("-.")
    kind = {"cross-framework": "cross"}.get(found.target.kind, found.target.kind)
    return f"explored-{kind}-{slug[:50]}-{example_digest(found.example)[:8]}"


def save(search: Search, cases_dir: Path, expectations_file: Path | None, out: Path) -> dict:
    """Write every reproduced finding; return the exploration summary (also written to out/explore.json)."""
    findings, builtin = [], {a.name for a in frameworks.builtin_apis()}
    tensor, distribution, drafts = [], [], []
    for found in search.found.values():
        cid = case_id(found)
        try:
            failure = found.target.evaluate(found.example, cid)  # the check exactly as `klconf run` will run it
        except Exception as exc:  # one finding klconf cannot replay must not lose the others
            findings.append(
                {
                    **_finding(found, cid, found.target.entry(found.example, cid), None),
                    "saved": False,
                    "note": f"klconf could not replay it: {type(exc).__name__}: {exc}"[:300],
                }
            )
            continue
        entry = found.target.entry(found.example, cid)
        summary = _finding(found, cid, entry, failure)
        findings.append(summary)
        if failure is None:
            summary["saved"], summary["note"] = False, "did not fail again under its final case id: not saved"
            continue
        entry = {
            "id": cid,
            "description": _description(found, failure, search.base_seed),
            "tags": ["explored", f"seed-{search.base_seed}", found.target.kind.replace("cross-framework", "cross")],
            **{k: v for k, v in entry.items() if k not in ("id", "description")},
        }
        if found.target.kind == "distribution":
            entry["expected"] = distribution_stored.expected_block(distribution_cases._build(entry, "<explored>", None))
            distribution.append(entry)
        else:
            entry["expected"] = stored.expected_block(build_case(entry))
            tensor.append(entry)
        failing = [r for r in failure.records if r["verdict"] in FAILING]
        summary["drafts"] = [d["id"] for d in (_draft(cid, r, found) for r in failing if r["api"] in builtin)]
        drafts += [_draft(cid, r, found) for r in failing if r["api"] in builtin]
        summary["repro"] = _write_repro(
            cases_dir / "repro",
            cid,
            failing[0] if failing else failure.records[0],
            _distribution_repro(found, entry, failing),
        )
        summary["saved"] = True
    written = []
    if tensor:
        written.append(str(_append(cases_dir / TENSOR_FILE, "cases", tensor, _HEADER_TENSOR)))
    if distribution:
        written.append(
            str(_append(cases_dir / DISTRIBUTION_FILE, "distribution_cases", distribution, _HEADER_DISTRIBUTION))
        )
    if drafts and expectations_file is not None:
        written.append(str(_append(expectations_file, "expectations", drafts, _HEADER_EXPECTATIONS)))
    return _write_summary(_summary(search, findings, written), out)


def summarize(search: Search, out: Path) -> dict:
    """The summary alone (nothing saved): each finding as the search left it."""
    findings = []
    for found in search.found.values():
        cid = case_id(found)
        findings.append({**_finding(found, cid, found.target.entry(found.example, cid), None), "saved": False})
    return _write_summary(_summary(search, findings, []), out)


def _write_summary(summary: dict, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    (out / "explore.json").write_text(
        json.dumps(jsonable(summary), indent=1, allow_nan=False, default=str) + "\n", encoding="utf-8"
    )
    return summary


def _finding(found: Found, cid: str, entry: dict, failure) -> dict:
    first = (failure.records if failure else found.failure.records)[0]
    return {
        "case_id": cid,
        "kind": found.target.kind,
        "target": found.target.label,
        "api": found.target.api,
        "framework": found.target.framework,
        "mechanism": (failure or found.failure).mechanism,
        "examples": found.examples,
        "dtypes": sorted(found.dtypes),
        "options": found.options[:8],
        "check_ids": [r["check_id"] for r in (failure or found.failure).records],
        "verdict": first["verdict"],
        "failure_kind": first.get("kind"),
        "message": first.get("message", ""),
        "diagnosis": first.get("diagnosis", ""),
        "input": {k: entry[k] for k in ("p", "q")},
        "dtype": entry["dtypes"][0],
    }


def _description(found: Found, failure, seed: int) -> str:
    seen = ", ".join(sorted(found.dtypes))
    return (
        f"Found by klconf explore (seed {seed}), shrunk by Hypothesis: {failure.mechanism}. "
        f"{found.examples} failing example(s) of this mechanism were seen, in {seen}."
    )


def _draft(cid: str, record: dict, found: Found) -> dict:
    options = {k: [v] for k, v in record["options"].items() if k != "wrt"}
    checks: dict = {"check": record.get("check", "value"), "case": cid, "api": record["api"]}
    if checks["check"] == "gradient":
        checks["wrt"] = [record["options"]["wrt"]]
    if checks["check"] != "distribution" and options:
        checks["options"] = options
    checks.update(device=[record["device"]], dtype=[record["dtype"]])
    evidence = "; ".join(x for x in (record.get("message", ""), record.get("diagnosis", "")) if x)
    kind = record.get("kind") or record["verdict"]
    return {
        "id": f"{cid}-{re.sub(r'[^a-z0-9]+', '-', record['api'].lower()).strip('-')}"[:120],
        "status": "bug",
        "kind": kind if kind != "internal" else "exception",
        "reason": f"Draft from klconf explore, mechanism to be confirmed: {found.failure.mechanism}. "
        f"Observed: {evidence}"[:1500],
        "checks": checks,
    }


def _distribution_repro(found: Found, entry: dict, failing: list[dict]) -> str | None:
    if found.target.kind != "distribution" or not failing:
        return None
    target = found.target
    assert isinstance(target, DistributionTarget), f"{target.label}: a distribution finding comes from a family pair"
    record = failing[0]
    return distribution_snippet(
        target.library, entry, record["check_id"], record.get("message", ""), entry["expected"]["kl"]
    )


def _write_repro(folder: Path, cid: str, record: dict, snippet: str | None = None) -> str:
    """A standalone snippet: the record's (runner failures carry one, made by conformance/repro.py), a
    distribution finding's (snippets.py); otherwise the klconf command that replays the check."""
    snippet = snippet or record.get("extra", {}).get("repro")
    if not snippet:
        snippet = (
            f"# klconf reproduction of {record['check_id']}\n# {record.get('message', '')[:300]}\n"
            "import subprocess\nimport sys\n\n"
            f"sys.exit(subprocess.call([sys.executable, '-m', 'conformance', 'run', '-k', {cid!r}, "
            f"'--framework', {record['framework'].split('/')[0]!r}, '--expectations', 'none', '-n', '0']))\n"
        )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{cid}.py"
    path.write_text(snippet, encoding="utf-8")
    return str(path)


_HEADER_TENSOR = (
    "# Tensor-level cases found by `klconf explore`: each is a shrunk input on which a check failed.\n"
    "# Written by conformance/explore/save.py; the description says what failed and how.\n"
)
_HEADER_DISTRIBUTION = (
    "# Distribution cases found by `klconf explore`: each is a shrunk parameter set on which a\n"
    "# library's KL disagreed with the closed form. Written by conformance/explore/save.py.\n"
)
_HEADER_EXPECTATIONS = (
    "# Expectations for the cases in cases/explored/, drafted by `klconf explore` from what it\n"
    "# observed. Format: conformance/schema/expectations.schema.json.\n"
)


def _append(path: Path, key: str, entries: list[dict], header: str) -> Path:
    """Add entries to a generated YAML document, keeping those already there (an id already present is kept)."""
    existing = []
    if path.exists():
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        existing = list(data.get(key) or [])
    ids = {e["id"] for e in existing}
    merged = existing + [e for e in entries if e["id"] not in ids]
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump({key: merged}, sort_keys=False, default_flow_style=None, width=110, allow_unicode=True)
    path.write_text(header + text, encoding="utf-8")
    return path


def _summary(search: Search, findings: list[dict], written: list[str]) -> dict:
    return {
        "type": "explore",
        "budget": search.budget.describe(),
        "seed": search.base_seed,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "seconds": round(search.seconds, 1),
        "rounds": search.rounds,
        "examples": sum(s.examples for s in search.stats.values()),
        "targets": [
            {
                "target": s.label,
                "kind": s.kind,
                "api": s.api,
                "framework": s.framework,
                "examples": s.examples,
                "failing": s.failing,
                "seconds": round(s.seconds, 2),
                "errors": s.errors,
            }
            for s in search.stats.values()
        ],
        "findings": findings,
        "files": written,
    }
