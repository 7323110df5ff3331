"""Rendering: Jinja2 with autoescaping, one self-contained file per page.

CSS, JavaScript and SVG are inlined and nothing is fetched, so a page opens from disk or
any static host. Data for the browser travels as JSON inside a
<script type="application/json"> element; `script_json` escapes <, > and & so that no
string from a case file or plug-in can close that element or open a comment.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Any

from markupsafe import Markup

from .. import __version__

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
ASSETS = HERE / "assets"


@functools.lru_cache(maxsize=1)
def environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(asset=asset, klconf_version=__version__)
    env.filters["num"] = _num
    return env


@functools.cache
def asset(name: str) -> Markup:
    """An inline asset (our own CSS or JavaScript, never data)."""
    text = (ASSETS / name).read_text(encoding="utf-8")
    if "</" in text and name.endswith(".js"):
        raise ValueError(f"{name} must not contain '</' (it is inlined inside <script>)")
    return Markup(text)


def script_json(data: Any) -> Markup:
    """JSON safe to embed in <script type="application/json">: no '<', '>' or '&' survive as themselves."""
    text = json.dumps(data, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    text = (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )
    return Markup(text)


def render(template: str, **context) -> str:
    context.setdefault("generated", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
    return environment().get_template(template).render(script_json=script_json, **context)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _num(value: Any, spec: str = ".3g") -> str:
    if value is None:
        return "—"
    try:
        return format(float(value), spec)
    except (TypeError, ValueError):
        return str(value)
