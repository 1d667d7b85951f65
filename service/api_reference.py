"""The API reference at `/openapi`: Redoc, served whole by Burro, so it works without internet.

Redoc's standalone bundle comes from the `drf-spectacular-sidecar` package (pinned in uv.lock,
released with each Redoc release). Burro only reads the file: the package itself (a Django
app) is never imported. No font or favicon is fetched from elsewhere either.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from litestar import Response, get
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin, RedocRenderPlugin
from litestar.response import File

ASSETS_PATH = "/openapi/assets"
_BUNDLE = Path("static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js")


def redoc_bundle() -> Path:
    """Where the installed sidecar package keeps Redoc's bundle (found without importing it)."""
    spec = importlib.util.find_spec("drf_spectacular_sidecar")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("drf-spectacular-sidecar is not installed (make install)")
    return Path(next(iter(spec.submodule_search_locations))) / _BUNDLE


def render_plugins() -> list[OpenAPIRenderPlugin]:
    """Redoc at `/openapi` from Burro's own copy; the raw document at `/openapi/openapi.json`."""
    return [
        RedocRenderPlugin(
            js_url=f"{ASSETS_PATH}/redoc.standalone.js", google_fonts=False, path="/", favicon=""
        ),
        JsonRenderPlugin(),
    ]


@get(f"{ASSETS_PATH}/redoc.standalone.js", include_in_schema=False, security=[])
async def redoc_script() -> Response[bytes]:
    return File(
        path=redoc_bundle(),
        media_type="application/javascript",
        content_disposition_type="inline",
        headers={"cache-control": "public, max-age=86400"},
    )
