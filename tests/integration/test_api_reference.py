"""`/openapi` works without internet: Redoc's bundle comes from Burro itself, and the page asks
no other host for anything (scripts, fonts, icons)."""

from __future__ import annotations

import re

import httpx

from service.api_reference import redoc_bundle


def test_the_reference_page_loads_everything_from_burro(client: httpx.Client) -> None:
    page = client.get("/openapi")
    assert page.status_code == 200
    head = page.text.split("<body", 1)[0]
    sources = re.findall(r'(?:src|href)=["\']([^"\']+)', head)
    assert sources, head
    for source in sources:
        assert source.startswith("/"), f"{source} is fetched from another host"
        fetched = client.get(source)
        assert fetched.status_code == 200, source
    script = client.get("/openapi/assets/redoc.standalone.js")
    assert script.headers["content-type"].startswith("application/javascript")
    assert script.content == redoc_bundle().read_bytes()
    assert b"Redoc" in script.content[:5000] or b"redoc" in script.content[:5000].lower()


def test_the_raw_document_is_served_next_to_it(client: httpx.Client) -> None:
    document = client.get("/openapi/openapi.json")
    assert document.status_code == 200
    assert "/v1/datasets" in document.json()["paths"]
