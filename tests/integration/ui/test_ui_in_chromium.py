"""The pages in a real browser: headless Chromium (driven over DevTools) signs in
through a `/ui/login?key=` link and its confirmation, renders each page, and its screenshot
shows what matters (the loss curve, the answers side by side); the DOM checks the elements.

Chromium is Debian's `chromium`, installed by `make browser` (which `make test` runs); without
it these tests skip, saying so in the summary.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.browser import Chromium, Image, read_png
from tests.support.data import answer
from tests.support.fixtures import OpenChromium
from tests.support.seeds import Seeded

TRAIN_BLUE = (0x25, 0x63, 0xEB)
VALID_ORANGE = (0xD9, 0x77, 0x06)
DIFF_PINK = (0xFF, 0xD7, 0xD5)

pytestmark = pytest.mark.browser


class Browser:
    """Each page in a browser of its own, signed in on the way."""

    def __init__(self, open_chromium: OpenChromium, root: Path, burro_url: str) -> None:
        self.open_chromium = open_chromium
        self.root = root
        self.burro_url = burro_url
        self.shots = 0

    def _signed_in(self, page: str) -> Chromium:
        # A fresh profile has no session: follow a sign-in link and confirm, as a person would.
        browser = self.open_chromium()
        browser.navigate(f"{self.burro_url}/ui/login?key=key-acme&next={page}")
        browser.click("#confirm")
        assert browser.url == f"{self.burro_url}{page}", browser.dom()[-1500:]
        return browser

    def dom(self, page: str) -> str:
        with self._signed_in(page) as browser:
            return browser.dom()

    def screenshot(self, page: str) -> Image:
        self.shots += 1
        with self._signed_in(page) as browser:
            return read_png(browser.screenshot(self.root / f"shot-{self.shots}.png"))


@pytest.fixture
def browser(open_chromium: OpenChromium, tmp_path: Path, burro_url: str) -> Browser:
    return Browser(open_chromium, tmp_path, burro_url)


def test_the_job_page_draws_the_loss_curves(browser: Browser, seeded: Seeded) -> None:
    dom = browser.dom(f"/ui/jobs/{seeded.job_id}")
    assert 'id="loss-chart"' in dom
    train = re.search(r'<path class="train"[^>]* d="([^"]+)"', dom)
    assert train is not None and len(re.findall(r"[ML][\d.]+,[\d.]+", train.group(1))) == 40
    assert "succeeded" in dom and "$0.42" in dom

    shot = browser.screenshot(f"/ui/jobs/{seeded.job_id}")
    assert (shot.width, shot.height) == (1200, 1400)
    blue = shot.where(TRAIN_BLUE)
    orange = shot.where(VALID_ORANGE)
    # Both curves are on screen, as lines spanning most of the chart's width.
    assert len(blue) > 300 and len(orange) > 100
    blue_xs = [x for x, _ in blue]
    assert max(blue_xs) - min(blue_xs) > 500
    # The training loss falls: its left end is drawn higher than its right end.
    left = [y for x, y in blue if x < min(blue_xs) + 40]
    right = [y for x, y in blue if x > max(blue_xs) - 40]
    assert min(left) < min(right)


def test_the_evaluation_page_shows_the_answers_side_by_side(
    browser: Browser, seeded: Seeded
) -> None:
    dom = browser.dom(f"/ui/evaluations/{seeded.evaluation_id}")
    assert dom.count('class="row"') == 3
    assert dom.count('class="side reference"') == 3
    assert answer(0) in dom
    assert "<mark>" in dom

    shot = browser.screenshot(f"/ui/evaluations/{seeded.evaluation_id}")
    pink = shot.where(DIFF_PINK, tolerance=6)
    assert len(pink) > 200  # the baseline's differing words are highlighted
    # The fine-tuned (blue) and baseline (orange) columns share lines: side by side, tuned left.
    blue = shot.where(TRAIN_BLUE, tolerance=12)
    orange = shot.where(VALID_ORANGE, tolerance=12)
    shared = {y for _, y in blue} & {y for _, y in orange}
    assert shared
    y = min(shared)
    assert max(x for x, yy in blue if yy == y) < min(x for x, yy in orange if yy == y)
    # The highlights sit in the right-hand (baseline) column.
    assert min(x for x, _ in pink) > shot.width // 2


def test_signing_in_without_a_key_in_a_browser_shows_the_form(
    open_chromium: OpenChromium, burro_url: str, seeded: Seeded
) -> None:
    with open_chromium() as browser:
        browser.navigate(f"{burro_url}/ui/jobs/{seeded.job_id}")
        dom = browser.dom()
    assert 'action="/ui/login"' in dom and 'id="error"' in dom
