"""Headless Chromium driven over the DevTools protocol (Debian's `chromium`), for dashboard screenshots.

Streamlit renders over a websocket after the page's load event, so ``chromium --screenshot`` alone
captures an empty shell; this waits until the expected text is on the page, then captures.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_binary() -> str | None:
    return shutil.which("chromium")


class Browser:
    """One headless Chromium page; use as a context manager."""

    def __init__(self, width: int = 1920, height: int = 1300) -> None:
        # chromium's helper processes may still write to the profile while it is removed
        self.profile = tempfile.TemporaryDirectory(prefix="bench-chromium-", ignore_cleanup_errors=True)
        self.process = subprocess.Popen(
            [chromium_binary(), *FLAGS, f"--user-data-dir={self.profile.name}", f"--window-size={width},{height}",
             "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port = self._devtools_port()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            page = next(t for t in json.load(response) if t["type"] == "page")
        from websockets.sync.client import connect

        self.closing = contextlib.ExitStack()
        self.socket = self.closing.enter_context(connect(page["webSocketDebuggerUrl"], max_size=2**26))
        self.ids = itertools.count(1)

    def _devtools_port(self) -> int:
        for line in self.process.stderr:
            found = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if found:
                return int(found.group(1))
        raise RuntimeError("chromium exited before opening its DevTools port")

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.closing.close()
        self.process.terminate()
        self.process.wait(timeout=30)
        self.profile.cleanup()

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result (events in between are skipped)."""
        message_id = next(self.ids)
        self.socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.socket.recv(timeout=60))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def evaluate(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def open(self, url: str, expected: list[str], timeout: float = 120) -> str:
        """Navigate and wait until every expected text is shown, images are loaded and the app is idle;
        return the body text."""
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.evaluate("document.body ? document.body.innerText : ''") or ""
            running = self.evaluate("!!document.querySelector('[data-testid=\"stStatusWidget\"]')")
            loaded = self.evaluate("Array.from(document.images).every(i => i.complete)")
            if all(e in text for e in expected) and not running and loaded:
                return text
            time.sleep(0.25)
        raise TimeoutError(f"{url}: expected {expected} not rendered within {timeout}s; page text: {text[:500]!r}")

    def dom(self) -> str:
        return self.evaluate("document.documentElement.outerHTML")

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path
