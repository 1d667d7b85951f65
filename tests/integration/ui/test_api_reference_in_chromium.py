"""`/openapi` in a real browser on a machine without internet: Redoc renders the reference."""

from __future__ import annotations

import pytest

from tests.support.fixtures import OpenChromium

pytestmark = pytest.mark.browser


def test_redoc_renders_the_reference_from_burros_own_assets(
    open_chromium: OpenChromium, burro_url: str
) -> None:
    with open_chromium() as browser:
        browser.navigate(f"{burro_url}/openapi")
        browser.wait_until("document.body.innerText.includes('Upload a dataset')")
        assert "Start a fine-tuning job" in browser.evaluate("document.body.innerText")
