"""The module-level ASGI app for servers: `granian --interface asgi service.asgi:app`.

Behind a proxy on loopback (or `FORWARDED_ALLOW_IPS`), `X-Forwarded-For` and
`X-Forwarded-Proto` name the client and the scheme, as uvicorn's `--proxy-headers` did: the
failed-key limit counts per client address, and the pages' cookie is `Secure` over https.
"""

import os
from typing import Any, cast

from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from service.app import create_app
from service.settings import Settings

app = ProxyHeadersMiddleware(
    cast("Any", create_app(Settings.from_env())),
    trusted_hosts=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
)
