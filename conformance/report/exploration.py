"""The exploration summary (`klconf explore`'s explore.json) for the HTML report, when one lies next to
the results: read defensively (a missing, malformed or foreign file shows nothing), every field coerced
to plain text or a number before the template (autoescaped) sees it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

FILE = "explore.json"
INPUT_CHARS = 400  # a shrunk input longer than this is cut in the page (the case file holds it whole)


def load(results: Iterable[Path | str]) -> dict | None:
    """The first readable explore.json in the folders of the results files, as the template expects it."""
    for folder in dict.fromkeys(Path(r).parent for r in results):
        path = folder / FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("type") == "explore":
            return _view(data, str(path))
    return None


def _text(value: Any, limit: int = 2000) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


def _number(value: Any) -> float | int | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _rows(value: Any) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _view(data: dict, path: str) -> dict:
    targets = [
        {
            "kind": _text(t.get("kind", "")),
            "target": _text(t.get("target", "")),
            "examples": _number(t.get("examples")),
            "failing": _number(t.get("failing")),
        }
        for t in _rows(data.get("targets"))
    ]
    findings = [
        {
            "case_id": _text(f.get("case_id", "")),
            "kind": _text(f.get("kind", "")),
            "mechanism": _text(f.get("mechanism", "")),
            "dtype": _text(f.get("dtype", "")),
            "examples": _number(f.get("examples")),
            "message": _text(f.get("message", ""), 600),
            "input": _text(f.get("input", {}), INPUT_CHARS),
            "saved": "saved" if f.get("saved") is True else _text(f.get("note", "not saved"), 300),
        }
        for f in _rows(data.get("findings"))
    ]
    return {
        "path": path,
        "budget": _text(data.get("budget", "")),
        "seed": _text(data.get("seed", "")),
        "seconds": _number(data.get("seconds")),
        "rounds": _number(data.get("rounds")),
        "examples": _number(data.get("examples")),
        "targets": targets,
        "findings": findings,
    }
