"""One way for klconf's tests (and benchmarks) to open a page in a real browser.

Playwright drives Debian's Chromium (`executable_path`): browser downloads are not possible on
klconf's machines, and a system browser is what a report reader has anyway. `open_page` yields a
Playwright page plus what went wrong while it was open: console errors, uncaught exceptions,
dialogs (a hostile string that runs would open one) and every request that left the file
(a self-contained report makes none).

Tests that need it call `skip_unless_browser()` first: with no Chromium or no Playwright they
are skipped with the reason, never failed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-extensions",
    "--mute-audio",
    "--no-first-run",
)


def binary() -> str | None:
    """The system's Chromium (or Chrome), if any."""
    return next((path for path in map(shutil.which, BINARIES) if path), None)


def unavailable() -> str | None:
    """Why a browser cannot be opened here, or None."""
    if binary() is None:
        return "no Chromium binary on PATH (apt-get install -y chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install playwright)"
    return None


def skip_unless_browser() -> None:
    import pytest

    reason = unavailable()
    if reason:
        pytest.skip(reason)


@dataclass
class Watched:
    """A page and the problems seen while it was open."""

    page: object  # playwright.sync_api.Page
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        """Everything a clean, self-contained page never produces."""
        return (
            [f"console error: {m}" for m in self.console_errors]
            + [f"uncaught: {m}" for m in self.page_errors]
            + [f"dialog: {m}" for m in self.dialogs]
            + [f"request: {u}" for u in self.requests]
        )


@contextlib.contextmanager
def open_page(path: str | Path, width: int = 1280, height: int = 900, timeout_ms: float = 30_000) -> Iterator[Watched]:
    """Open a local HTML file headless and watch it; the page has loaded when this yields."""
    from playwright.sync_api import sync_playwright

    url = Path(path).resolve().as_uri()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=binary(), headless=True, args=list(ARGS))
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(timeout_ms)
            watched = Watched(page)
            page.on("console", lambda msg: watched.console_errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: watched.page_errors.append(str(exc)))

            def on_dialog(dialog) -> None:
                watched.dialogs.append(dialog.message)
                dialog.dismiss()

            page.on("dialog", on_dialog)
            page.on(
                "request",
                lambda req: (
                    None if req.url.startswith(("file:", "data:", "about:")) else watched.requests.append(req.url)
                ),
            )
            page.goto(url, wait_until="load")
            yield watched
        finally:
            browser.close()
