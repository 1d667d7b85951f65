"""`/openapi` in a real browser on a machine without internet: Redoc renders the reference."""

from __future__ import annotations

from pathlib import Path

import pytest
from cdp import Chromium
from ui_helpers import find_chromium

pytestmark = pytest.mark.browser


def test_redoc_renders_the_reference_from_burros_own_assets(burro: str, tmp_path: Path) -> None:
    binary = find_chromium()
    if binary is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)")
    with Chromium(binary, tmp_path / "profile") as browser:
        browser.navigate(f"{burro}/openapi")
        browser.wait_until("document.body.innerText.includes('Upload a dataset')")
        assert "Start a fine-tuning job" in browser.evaluate("document.body.innerText")
