"""The committed OpenAPI document is the code's: regenerate it (`make openapi`) when it drifts."""

from __future__ import annotations

from burro.cli import openapi_bytes
from tests.support import ROOT


def test_the_committed_openapi_document_matches_the_code() -> None:
    committed = (ROOT / "openapi" / "openapi.json").read_bytes()
    assert committed == openapi_bytes(), (
        "openapi/openapi.json is stale: run `make openapi` and commit it"
    )
