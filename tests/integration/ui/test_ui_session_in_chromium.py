"""The README's sign-in link, followed in a real browser from another site's page: it asks to
confirm the tenant, signs in with one click and lands on the page it names; later links from
other sites keep the session (SameSite=Lax); another site cannot sign the browser in."""

from __future__ import annotations

import html
from collections.abc import Callable

import pytest

from tests.support.fixtures import OpenChromium, StartReceiver
from tests.support.receivers import answer
from tests.support.seeds import Seeded

pytestmark = pytest.mark.browser


@pytest.fixture
def other_site(start_receiver: StartReceiver) -> Callable[[str], str]:
    """Another site (`localhost`, not Burro's `127.0.0.1`) serving one page: `other_site(html)`
    is its address."""

    def serve(page: str) -> str:
        site = start_receiver(answer(200, page, **{"Content-Type": "text/html; charset=utf-8"}))
        return f"http://localhost:{site.port}"

    return serve


def test_the_sign_in_link_works_when_followed_from_another_site(
    open_chromium: OpenChromium,
    other_site: Callable[[str], str],
    burro_url: str,
    seeded: Seeded,
) -> None:
    target = f"/ui/evaluations/{seeded.evaluation_id}"
    link = f"{burro_url}/ui/login?key=key-acme&next={target}"
    page = (
        f'<a id="readme" href="{html.escape(link)}">see the evaluation</a>'
        f'<a id="jobs" href="{html.escape(burro_url)}/ui/jobs">jobs</a>'
    )
    site = other_site(page)
    with open_chromium() as browser:
        browser.navigate(f"{site}/")
        browser.click("#readme")
        confirm = browser.dom()
        assert 'id="who">acme<' in confirm, confirm[-800:]
        assert "key-acme" not in browser.url
        browser.click("#confirm")
        assert browser.url == f"{burro_url}{target}"
        evaluation = browser.dom()
        assert 'id="wins"' in evaluation and "401" not in evaluation
        # Signed in, a plain link from another site opens the page (the cookie is Lax).
        browser.navigate(f"{site}/")
        browser.click("#jobs")
        assert seeded.job_id in browser.dom()


def test_another_site_cannot_sign_the_browser_in(
    open_chromium: OpenChromium,
    other_site: Callable[[str], str],
    burro_url: str,
    seeded: Seeded,
) -> None:
    # A form on another site that posts the site owner's key to Burro (login CSRF).
    page = (
        f'<form id="f" method="post" action="{html.escape(burro_url)}/ui/login">'
        '<input name="key" value="key-acme"><button id="go" type="submit">go</button></form>'
    )
    site = other_site(page)
    with open_chromium() as browser:
        browser.navigate(f"{site}/")
        browser.click("#go")
        assert "403" in browser.dom()
        browser.navigate(f"{burro_url}/ui/jobs")
        assert 'action="/ui/login"' in browser.dom()  # not signed in: the sign-in form
        assert seeded.job_id not in browser.dom()
