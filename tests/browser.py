"""A headless Chromium driven through the DevTools protocol, for the report's browser tests.

Real input events (``Input.dispatchMouseEvent``) reach the page as a user's mouse would;
waits poll a condition in the page (never a fixed sleep), so a busy machine only slows them.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest


def chromium() -> str:
    """The Chromium executable; skips (fails on CI, which installs it) where absent."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):  # .ci/run installs it: CI never skips the browser check
        pytest.fail("chromium is not installed, and CI must run the headless-browser check")
    pytest.skip("needs Debian's chromium for the headless-browser check (not installed here)")


def chromium_args(exe: str) -> list[str]:
    return [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--allow-file-access-from-files", "--no-first-run"]  # fmt: skip


class Page:
    """One page of a headless Chromium, opened at ``url``."""

    def __init__(self, url: str, *, width: int = 1300, height: int = 1000,
                 timeout: float = 120.0) -> None:  # fmt: skip
        try:
            import websocket
        except ImportError:
            if os.environ.get("CI"):
                pytest.fail("websocket-client (a dev extra) is missing: CI runs the browser tests")
            pytest.skip("needs websocket-client (pip install -e '.[dev]')")
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="lbmm-chromium-")
        self._proc = subprocess.Popen(
            [*chromium_args(chromium()), f"--user-data-dir={self._profile}",
             "--remote-debugging-port=0", f"--window-size={width},{height}", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        port_file = Path(self._profile) / "DevToolsActivePort"
        self._wait(lambda: port_file.is_file() and len(port_file.read_text().split()) >= 2,
                   "Chromium's DevTools port")  # fmt: skip
        port = port_file.read_text().split()[0]

        def page_target():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            return pages[0]["webSocketDebuggerUrl"] if pages else None

        ws_url = self._wait(page_target, "a page target")
        self._ws = websocket.create_connection(ws_url, timeout=timeout)
        self._ids = itertools.count(1)

    def _wait(self, condition, what: str) -> Any:
        deadline = time.monotonic() + self.timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {self.timeout:.0f} s for {what}")
            time.sleep(0.1)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; its result (events in between are dropped)."""
        mid = next(self._ids)
        self._ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self._ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-serialisable)."""
        res = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression!r}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def wait_for(self, expression: str, what: str | None = None) -> Any:
        """Poll a JavaScript expression until it is truthy; its value."""
        return self._wait(lambda: self.evaluate(expression), what or expression)

    def mouse_move(self, x: float, y: float) -> None:
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)

    def screenshot(self, path: Path) -> None:
        import base64

        data = self.send("Page.captureScreenshot", format="png")["data"]
        Path(path).write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self._ws.close()
        finally:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
