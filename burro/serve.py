"""How `burro serve` runs the API: granian, set up so that a slow or huge request head cannot
hold the process.

Why granian: its HTTP/1 parser (hyper, in Rust) bounds what it buffers of a request head
(`max_buffer_size`: a head much larger is answered 431 before Python sees it) and closes a
connection whose head is not complete within `header_read_timeout`. uvicorn has neither: with
httptools a 200 MB header is read whole, and no timeout covers a head that never ends; with h11
(`h11_max_incomplete_event_size`) an oversized head is a 400, not a 431, and still no timeout.
Hypercorn, also h11, answers 400 and only has a read timeout that closes idle connections. The
exact 64 KiB limit (431) and the body idle timeout (408) are in `service.http_limits`, so they
hold under any ASGI server, the tests' uvicorn included.
"""

from __future__ import annotations

from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server.mp import MPServer

from service.http_limits import MAX_HEADER_BYTES
from service.settings import Settings

# hyper's smallest buffer is 8 KiB; it refuses a head once it has buffered this much of it.
_HEAD_BUFFER_BYTES = max(8192, MAX_HEADER_BYTES)


def api_server(settings: Settings, host: str, port: int) -> MPServer:
    """The API's server for `settings`, listening on host:port (call `.serve()`)."""
    # Worker processes, not threads: this CPython has a GIL.
    return MPServer(
        "service.asgi:app",
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        # HTTP/1.1 only: the head limits and timeout below are HTTP/1 settings (h2c is off).
        http=HTTPModes.http1,
        websockets=False,
        http1_settings=HTTP1Settings(
            header_read_timeout=max(1, round(settings.header_timeout * 1000)),
            max_buffer_size=_HEAD_BUFFER_BYTES,
        ),
        log_level=LogLevels.warning,  # structlog logs every request itself
        log_access=False,
    )
