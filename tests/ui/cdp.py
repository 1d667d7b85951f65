"""A small driver for headless Chromium over the DevTools protocol: navigate, click, read the
DOM, take a screenshot. Enough for a test to sign in through the pages as a person would (a
click on "Sign in"), which Chromium's one-shot `--dump-dom`/`--screenshot` cannot."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from ui_helpers import CHROMIUM_FLAGS
from websockets.sync.client import ClientConnection, connect

DEADLINE_SECONDS = 30.0


class Chromium:
    """One headless Chromium with a fresh profile, driven through its first tab."""

    def __init__(self, binary: str, profile: Path, width: int = 1200, height: int = 1400) -> None:
        self.profile = profile
        self.process = subprocess.Popen(
            [
                binary,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._ids = itertools.count(1)
        self._exit = contextlib.ExitStack()
        self._socket: ClientConnection = self._exit.enter_context(
            connect(self._page_socket(), max_size=64 * 1024 * 1024)
        )
        self.call("Page.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def _page_socket(self) -> str:
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Chromium did not open its DevTools port")
            time.sleep(0.05)
        port = port_file.read_text().split()[0]
        while True:
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return str(pages[0]["webSocketDebuggerUrl"])
            if time.monotonic() > deadline:
                raise RuntimeError("Chromium opened no tab")
            time.sleep(0.05)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result (events that arrive meanwhile are dropped)."""
        message_id = next(self._ids)
        self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        deadline = time.monotonic() + DEADLINE_SECONDS
        while True:
            message = json.loads(self._socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def _wait_for_document(self, previous: str | None) -> None:
        """Until a new document has loaded (its URL or identity changed, and it is complete)."""
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            try:
                state = self.evaluate("[document.readyState, window.__burroMark || null]")
            except RuntimeError:  # the old document went away mid-question
                state = None
            if state and state[0] == "complete" and state[1] != previous:
                return
            time.sleep(0.05)
        raise TimeoutError("the page did not finish loading")

    def _mark(self) -> str:
        mark = f"m{next(self._ids)}"
        self.evaluate(f"window.__burroMark = {json.dumps(mark)}")
        return mark

    def navigate(self, url: str) -> None:
        mark = self._mark()
        self.call("Page.navigate", url=url)
        self._wait_for_document(mark)

    def click(self, selector: str) -> None:
        """Click the element (a link or a button) and wait for the page it leads to."""
        mark = self._mark()
        found = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return false; e.click(); return true; })()"
        )
        if not found:
            raise AssertionError(f"no {selector} on {self.url}")
        self._wait_for_document(mark)

    def wait_until(self, expression: str, timeout: float = DEADLINE_SECONDS) -> None:
        """Until `expression` is true in the page (scripts render after the load event)."""
        deadline = time.monotonic() + timeout
        while not self.evaluate(expression):
            if time.monotonic() > deadline:
                raise TimeoutError(f"never true: {expression}")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return str(self.evaluate("location.href"))

    def dom(self) -> str:
        return str(self.evaluate("document.documentElement.outerHTML"))

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self._exit.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
