"""Headless Chromium (Debian's), driven over the DevTools protocol: load a page, read what
it shows, type into it, take a screenshot."""

import base64
import contextlib
import itertools
import json
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from needs import chromium_path
from websockets.sync.client import connect

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--remote-debugging-port=0"]


class Browser:
    def __init__(self, width: int = 1280, height: int = 900):
        path = chromium_path()
        if path is None:
            raise AssertionError("chromium is not installed (apt-get install chromium)")
        self._profile = tempfile.TemporaryDirectory(prefix="spotty-chromium-")
        self._proc = subprocess.Popen(
            [path, *FLAGS, "--user-data-dir=" + self._profile.name,
             "--window-size=%d,%d" % (width, height), "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = self._devtools_port()
        with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port, timeout=10) as r:
            page = next(t for t in json.load(r) if t["type"] == "page")
        self._stack = contextlib.ExitStack()
        self._ws = self._stack.enter_context(
            connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10))
        self._ids = itertools.count(1)
        self._events: list[dict] = []
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def _devtools_port(self) -> int:
        active = Path(self._profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not active.exists() or not active.read_text().strip():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise AssertionError("chromium did not start (exit %s)" % self._proc.poll())
            time.sleep(0.1)
        return int(active.read_text().split()[0])

    def call(self, method: str, **params) -> dict:
        ident = next(self._ids)
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=30))
            if message.get("id") == ident:
                if "error" in message:
                    raise AssertionError("%s: %s" % (method, message["error"]))
                return message.get("result", {})
            self._events.append(message)

    def _wait_event(self, method: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self._events):
                if event.get("method") == method:
                    del self._events[: i + 1]
                    return
            left = deadline - time.monotonic()
            assert left > 0, "no %s within %s s" % (method, timeout)
            self._events.append(json.loads(self._ws.recv(timeout=left)))

    def open(self, url: str) -> None:
        self._events.clear()
        self.call("Page.navigate", url=url)
        self._wait_event("Page.loadEventFired")

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError("%s: %s" % (expression, result["exceptionDetails"]))
        return result["result"].get("value")

    def text(self) -> str:
        """What the page shows, as a reader sees it (innerText)."""
        return self.evaluate("document.body.innerText")

    def wait_for_text(self, words: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            shown = self.text()
            if words in shown:
                return shown
            assert time.monotonic() < deadline, "%r not shown within %s s:\n%s" % (
                words, timeout, shown)
            time.sleep(0.5)

    def submit(self, form_selector: str) -> None:
        """Click the form's submit button, as a user does, and wait for the next page."""
        self._events.clear()
        self.evaluate("document.querySelector(%s).querySelector('[type=submit]').click()"
                      % json.dumps(form_selector))
        self._wait_event("Page.loadEventFired")

    def type_into(self, selector: str, text: str) -> None:
        self.evaluate("(() => { const input = document.querySelector(%s); input.focus(); "
                      "input.value = %s; input.dispatchEvent(new Event('input', "
                      "{bubbles: true})); })()" % (json.dumps(selector), json.dumps(text)))

    def screenshot(self, path: Path) -> None:
        """The whole page, however long."""
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": size["width"],
                               "height": size["height"], "scale": 1})
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        if getattr(self, "_stack", None):
            self._stack.close()
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._profile.cleanup()
