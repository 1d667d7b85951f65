"""Headless Chromium (installed by `make browser`, never by a test) and a small PNG reader to
look at its screenshots."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

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
CHROMIUM_TIMEOUT = 90


def find_chromium() -> str | None:
    """Debian's `chromium` (or `chromium-browser`) on PATH; None when it is not installed."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium once with a fresh profile (`profile` must not exist yet)."""
    command = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT, check=False
    )


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
