"""The report in a real browser: headless Chromium driven over the DevTools protocol.

The tests open a report with no console errors and no network requests, click filters and a
matrix cell and watch what is shown change, check that hostile strings from case files and
plug-ins show as text and never run, and take a screenshot. `Browser` records console errors,
uncaught exceptions, JavaScript dialogs and requests; benchmarks/report_bench.py uses it too.
They need a `chromium` (or Chrome) binary and websocket-client, and are skipped with the
reason where either is missing.
"""
from __future__ import annotations

import base64
import importlib.util
import os
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--mute-audio", "--remote-debugging-port=0")


def binary() -> str | None:
    for name in BINARIES:
        path = shutil.which(name)
        if path:
            return path
    return None


def unavailable() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if binary() is None:
        return "no Chromium binary on PATH (apt-get install -y chromium)"
    if importlib.util.find_spec("websocket") is None:
        return "websocket-client is not installed (pip install websocket-client)"
    return None


class Browser:
    """One headless Chromium with one page; use as a context manager."""

    def __init__(self, width: int = 1400, height: int = 1000, timeout: float = 60.0):
        self.width, self.height, self.timeout = width, height, timeout
        self.profile = tempfile.TemporaryDirectory(prefix="klconf-chromium-", ignore_cleanup_errors=True)
        self.process = None
        self.ws = None
        self._next_id = 0
        self.console_errors: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.events: list[dict] = []

    def __enter__(self) -> "Browser":
        import websocket

        self.process = subprocess.Popen([binary(), *FLAGS, f"--user-data-dir={self.profile.name}", "about:blank"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = self._port()
        page = self._page_target(port)
        self.ws = websocket.create_connection(page, timeout=self.timeout, suppress_origin=True)
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                  deviceScaleFactor=1, mobile=False)
        return self

    def __exit__(self, *exc):
        try:
            if self.ws is not None:
                self.ws.close()
        finally:
            if self.process is not None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            for _ in range(20):  # Chromium's helper processes may still be writing the profile
                shutil.rmtree(self.profile.name, ignore_errors=True)
                if not Path(self.profile.name).exists():
                    break
                time.sleep(0.1)
            self.profile.cleanup()

    def _port(self) -> int:
        marker = Path(self.profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if marker.exists():
                text = marker.read_text().split()
                if text:
                    return int(text[0])
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited with status {self.process.returncode}")
            time.sleep(0.05)
        raise TimeoutError("chromium did not open its DevTools port")

    def _page_target(self, port: int) -> str:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as response:
                targets = json.load(response)
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
            time.sleep(0.05)
        raise TimeoutError("chromium opened no page")

    # ------------------------------------------------------------------ protocol

    def send(self, method: str, **params) -> dict:
        self._next_id += 1
        ident = self._next_id
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._event(message)

    def _event(self, message: dict) -> None:
        method, params = message.get("method", ""), message.get("params", {})
        self.events.append(message)
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.console_errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.console_errors.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.console_errors.append(params["entry"].get("text", ""))
        elif method == "Network.requestWillBeSent":
            self.requests.append(params.get("request", {}).get("url", ""))
        elif method == "Page.javascriptDialogOpening":
            self.dialogs.append(params.get("message", ""))
            self.ws.send(json.dumps({"id": 0, "method": "Page.handleJavaScriptDialog", "params": {"accept": True}}))

    def wait_for(self, method: str, timeout: float | None = None) -> dict:
        deadline = time.monotonic() + (timeout or self.timeout)
        for message in self.events:
            if message.get("method") == method:
                self.events.remove(message)
                return message
        while time.monotonic() < deadline:
            message = json.loads(self.ws.recv())
            self._event(message)
            if message.get("method") == method:
                self.events.remove(message)
                return message
        raise TimeoutError(f"no {method} within the timeout")

    # ------------------------------------------------------------------ page

    def open(self, path: Path | str) -> float:
        """Navigate to a file and wait for its load event; return the wall time in seconds."""
        url = Path(path).resolve().as_uri()
        self.events.clear()
        started = time.perf_counter()
        self.send("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        return time.perf_counter() - started

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} raised: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    def click(self, selector: str) -> None:
        """A real mouse click (pressed and released) at the centre of the first element matching `selector`."""
        box = self.evaluate(
            f"(function(){{var e=document.querySelector({json.dumps(selector)}); if(!e) return null;"
            f"e.scrollIntoView({{block:'center'}}); var r=e.getBoundingClientRect();"
            f"return [r.left + r.width/2, r.top + r.height/2];}})()")
        if box is None:
            raise LookupError(f"no element matches {selector!r}")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def screenshot(self, path: Path | str, full_page: bool = False) -> Path:
        params = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            height = self.evaluate("document.documentElement.scrollHeight")
            params["clip"] = {"x": 0, "y": 0, "width": self.width, "height": min(int(height), 16000), "scale": 1}
        data = self.send("Page.captureScreenshot", **params)["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path


# --------------------------------------------------------------------------- tests

needs_browser = pytest.mark.skipif(unavailable() is not None, reason=unavailable() or "")

MATRIX_APIS = "Array.from(document.querySelectorAll('table.matrix th.api')).map(e => e.textContent)"
MATRIX_CELLS = "Array.from(document.querySelectorAll('table.matrix td.cell:not(.c-none)')).map(e => e.className)"
COUNT = "document.getElementById('filter-count').textContent"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from conformance.report import write_report
    from tests.test_report_records import (HOSTILE, HOSTILE_CLOSE, HOSTILE_IMG, convention, failing,
                                           framework_event, record, write_results)

    tmp = tmp_path_factory.mktemp("browser")
    records = []
    for case in ("canonical-2x3", "dirichlet-8x5", HOSTILE):
        for dtype in ("float32", "float64"):
            records += [record(case, dtype=dtype), record(case, dtype=dtype, options={"reduction": "none"}),
                        record(case, "jax.scipy.special.rel_entr", "jax", dtype=dtype, options={}),
                        record(case, "scipy.special.kl_div", "scipy", dtype=dtype, options={})]
        records.append(failing(case, dtype="float16", message=HOSTILE_IMG, diagnosis=HOSTILE_CLOSE,
                               extra={"repro": f"print({HOSTILE_CLOSE!r})\n"}))
        records.append(record(case, "jax.scipy.special.rel_entr", "jax", "cuda", options={}, verdict="skip",
                              reason=HOSTILE))
    records.append(failing("dirichlet-8x5", "scipy.special.kl_div", "scipy", dtype="float16", options={}))
    records.append(convention(api=f"plugin.{HOSTILE}", framework="numpy", inferred={"reduction": HOSTILE_IMG}))
    path = write_results(tmp / "results.jsonl", records,
                         frameworks=[framework_event(), framework_event("numpy", HOSTILE, **{HOSTILE: HOSTILE_CLOSE})])
    return write_report([path], tmp / "out"), records


@needs_browser
def test_report_opens_without_errors_or_requests(report, tmp_path):
    index, records = report
    with Browser() as browser:
        browser.open(index)
        assert browser.console_errors == []
        assert browser.dialogs == []
        assert browser.requests == [index.resolve().as_uri()]  # nothing but the page itself
        assert browser.evaluate("window.klconfReport.checks") == len(records)
        assert browser.evaluate(COUNT).startswith(f"{len(records)} of {len(records)} checks")
        shot = browser.screenshot(_screenshot_path(tmp_path, "report.png"))
        assert shot.stat().st_size > 20000
        browser.evaluate("document.getElementById('matrix').scrollIntoView()")
        browser.screenshot(_screenshot_path(tmp_path, "matrix.png"))


@needs_browser
def test_filters_change_what_is_shown(report):
    index, records = report
    with Browser() as browser:
        browser.open(index)
        apis = browser.evaluate(MATRIX_APIS)
        assert "torch.nn.functional.kl_div" in apis and "scipy.special.kl_div" in apis
        browser.click("input[data-dim=fw][value=torch]")
        after = browser.evaluate(MATRIX_APIS)
        assert "torch.nn.functional.kl_div" not in after and "scipy.special.kl_div" in after
        torch_checks = sum(r.framework == "torch" for r in records)
        assert browser.evaluate(COUNT).startswith(f"{len(records) - torch_checks} of {len(records)}")
        browser.click("input[data-dim=fw][value=torch]")
        browser.click("input[data-dim=v][value=pass]")
        cells = browser.evaluate(MATRIX_CELLS)
        assert cells and not any("c-pass" in c for c in cells)
        failures = browser.evaluate("document.querySelectorAll('#failure-list details.failure').length")
        assert failures == sum(r.failed for r in records)
        browser.click("input[data-dim=d][value=cpu]")
        assert all("c-skip" in c for c in browser.evaluate(MATRIX_CELLS))
        assert browser.evaluate("document.querySelectorAll('#failure-list details.failure').length") == 0
        assert browser.console_errors == []


@needs_browser
def test_matrix_cell_leads_to_failure_details(report):
    index, _ = report
    with Browser() as browser:
        browser.open(index)
        browser.click("td.cell.c-fail[data-case='dirichlet-8x5'][data-api='scipy.special.kl_div']")
        rows = browser.evaluate("document.querySelectorAll('#cell-detail tbody tr').length")
        assert rows == 3  # two passing dtypes and the failing float16
        browser.click("#cell-detail a")
        opened = browser.evaluate("Array.from(document.querySelectorAll('details.failure[open] code')).map(e => e.textContent)")
        assert opened == ["dirichlet-8x5::scipy.special.kl_div[]::cpu::float16"]
        assert "print('observed:'" in browser.evaluate("document.querySelector('details.failure[open] pre.repro').textContent")
        assert browser.console_errors == []


@needs_browser
def test_hostile_strings_show_as_text_and_never_run(report):
    from tests.test_report_records import HOSTILE, HOSTILE_CLOSE, HOSTILE_IMG

    index, _ = report
    with Browser() as browser:
        browser.open(index)
        browser.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        text = browser.evaluate("document.body.innerText")
        assert HOSTILE in text and HOSTILE_IMG in text  # matrix rows, conventions table, failure messages
        assert browser.evaluate("typeof window.__xss") == "undefined"
        assert browser.dialogs == [] and browser.console_errors == []
        assert browser.evaluate("document.querySelectorAll('script').length") == 2
        assert browser.evaluate("document.querySelectorAll('img').length") == 0
        repro = browser.evaluate("document.querySelector('details.failure pre.repro').textContent")
        assert HOSTILE_CLOSE in repro


def _screenshot_path(tmp_path: Path, name: str) -> Path:
    """Screenshots go to $KLCONF_SCREENSHOTS when set (to look at them), else to the test's temporary folder."""
    folder = Path(os.environ.get("KLCONF_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name
