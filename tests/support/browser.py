"""Headless Chromium (installed by `make browser`, never by a test), driven over the DevTools
protocol (navigate, click, read the DOM, take a screenshot), and a small PNG reader to look at
its screenshots.

Every Chromium is started in a process group of its own and the whole group is killed when it
closes (a test's teardown, or the interpreter's exit at the latest), so no headless browser
outlives the test that started it.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import struct
import subprocess
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
from websockets.sync.client import ClientConnection, connect

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)
# How long Chromium may take to start, answer a command or load a page (a loaded machine).
DEADLINE_SECONDS = 30.0
# How long a closing Chromium may take to exit on SIGTERM before its group is killed.
EXIT_SECONDS = 10.0
_POLL_SECONDS = 0.05


def find_chromium() -> str | None:
    """Debian's `chromium` (or `chromium-browser`) on PATH; None when it is not installed."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


# Every Chromium still open, killed at the interpreter's exit if a test's teardown never ran.
_OPEN: set[Chromium] = set()


@atexit.register
def _close_all() -> None:
    for browser in list(_OPEN):
        browser.close()


class Chromium:
    """One headless Chromium with a fresh profile, driven through its first tab. Use it as a
    context manager (or the `open_chromium` fixture): closing kills its whole process group."""

    def __init__(self, binary: str, profile: Path, width: int = 1200, height: int = 1400) -> None:
        self.profile = profile
        self._ids = itertools.count(1)
        self._exit = contextlib.ExitStack()
        # A session of its own: its renderers, zygotes and GPU process share its process group,
        # which close() kills as one.
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
            start_new_session=True,
        )
        _OPEN.add(self)
        try:
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
        except BaseException:
            self.close()  # a browser that never became usable is killed all the same
            raise

    def _page_socket(self) -> str:
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                message = "Chromium did not open its DevTools port"
                raise RuntimeError(message)
            time.sleep(_POLL_SECONDS)
        port = port_file.read_text().split()[0]
        while True:
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return str(pages[0]["webSocketDebuggerUrl"])
            if time.monotonic() > deadline:
                message = "Chromium opened no tab"
                raise RuntimeError(message)
            time.sleep(_POLL_SECONDS)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result (events that arrive meanwhile are dropped)."""
        message_id = next(self._ids)
        self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        deadline = time.monotonic() + DEADLINE_SECONDS
        while True:
            message = json.loads(self._socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == message_id:
                if "error" in message:
                    error = f"{method}: {message['error']}"
                    raise RuntimeError(error)
                result: dict[str, Any] = message.get("result", {})
                return result

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
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
            time.sleep(_POLL_SECONDS)
        message = "the page did not finish loading"
        raise TimeoutError(message)

    def _mark(self) -> str:
        mark = f"m{next(self._ids)}"
        self.evaluate(f"window.__burroMark = {json.dumps(mark)}")
        return mark

    def navigate(self, url: str) -> None:
        """Open `url` in the tab and wait until it has loaded."""
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
            message = f"no {selector} on {self.url}"
            raise AssertionError(message)
        self._wait_for_document(mark)

    def wait_until(self, expression: str, timeout: float = DEADLINE_SECONDS) -> None:
        """Until `expression` is true in the page (scripts render after the load event)."""
        deadline = time.monotonic() + timeout
        while not self.evaluate(expression):
            if time.monotonic() > deadline:
                message = f"never true: {expression}"
                raise TimeoutError(message)
            time.sleep(_POLL_SECONDS)

    @property
    def url(self) -> str:
        return str(self.evaluate("location.href"))

    def dom(self) -> str:
        return str(self.evaluate("document.documentElement.outerHTML"))

    def screenshot(self, path: Path) -> Path:
        """Save what the tab shows as a PNG at `path`."""
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        """Close the DevTools connection and kill Chromium's process group (SIGTERM, then
        SIGKILL for whatever is left); safe to call twice."""
        _OPEN.discard(self)
        try:
            self._exit.close()
        finally:
            self._kill_group()

    def _kill_group(self) -> None:
        group = self.process.pid  # the leader of its own session and group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=EXIT_SECONDS)
        # Children outlive a leader that exits on SIGTERM only for a moment; none may stay.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        self.process.wait(timeout=EXIT_SECONDS)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True)
class Image:
    width: int
    height: int
    channels: int
    rows: list[bytes]

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        row, i = self.rows[y], x * self.channels
        return row[i], row[i + 1], row[i + 2]

    def where(self, colour: tuple[int, int, int], tolerance: int = 24) -> list[tuple[int, int]]:
        """Every (x, y) whose colour is within `tolerance` of `colour` on each channel."""
        found = []
        r0, g0, b0 = colour
        step = self.channels
        for y, row in enumerate(self.rows):
            for x in range(self.width):
                i = x * step
                if (
                    abs(row[i] - r0) <= tolerance
                    and abs(row[i + 1] - g0) <= tolerance
                    and abs(row[i + 2] - b0) <= tolerance
                ):
                    found.append((x, y))
        return found


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_RGB, _RGBA = 2, 6
_SUB, _UP, _AVERAGE, _PAETH = 1, 2, 3, 4


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _unfilter(kind: int, line: bytearray, previous: bytearray, channels: int) -> bytearray:
    """Undo one scanline's PNG filter (RFC 2083, 6.2-6.6)."""
    if kind == _SUB:
        for i in range(channels, len(line)):
            line[i] = (line[i] + line[i - channels]) & 0xFF
    elif kind == _UP:
        line = bytearray((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
    elif kind == _AVERAGE:
        for i in range(len(line)):
            left = line[i - channels] if i >= channels else 0
            line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
    elif kind == _PAETH:
        for i in range(len(line)):
            a = line[i - channels] if i >= channels else 0
            c = previous[i - channels] if i >= channels else 0
            line[i] = (line[i] + _paeth(a, previous[i], c)) & 0xFF
    return line


def read_png(path: Path) -> Image:
    """An 8-bit, non-interlaced RGB or RGBA PNG (what Chromium writes), decoded."""
    data = path.read_bytes()
    assert data[:8] == _PNG_SIGNATURE, "not a PNG"
    position, idat = 8, b""
    width = height = channels = 0
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and colour in (_RGB, _RGBA), (depth, colour)
            channels = 3 if colour == _RGB else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        line = bytearray(raw[start + 1 : start + 1 + stride])
        previous = _unfilter(raw[start], line, previous, channels)
        rows.append(bytes(previous))
    return Image(width=width, height=height, channels=channels, rows=rows)
