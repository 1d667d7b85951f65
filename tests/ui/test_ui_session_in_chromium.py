"""The README's sign-in link, followed in a real browser from another site's page: it asks to
confirm the tenant, signs in with one click and lands on the page it names; later links from
other sites keep the session (SameSite=Lax); another site cannot sign the browser in."""

from __future__ import annotations

import html
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cdp import Chromium
from ui_helpers import Seeded, find_chromium

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def chromium_path() -> str:
    binary = find_chromium()
    if binary is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)")
    return binary


@contextmanager
def other_site(page: str) -> Iterator[str]:
    """Another site (`localhost`, not Burro's `127.0.0.1`) serving one page at `/`."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = page.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_sign_in_link_works_when_followed_from_another_site(
    chromium_path: str, burro: str, seeded: Seeded, tmp_path: Path
) -> None:
    target = f"/ui/evaluations/{seeded.evaluation_id}"
    link = f"{burro}/ui/login?key=key-acme&next={target}"
    page = (
        f'<a id="readme" href="{html.escape(link)}">see the evaluation</a>'
        f'<a id="jobs" href="{html.escape(burro)}/ui/jobs">jobs</a>'
    )
    with other_site(page) as site, Chromium(chromium_path, tmp_path / "profile") as browser:
        browser.navigate(f"{site}/")
        browser.click("#readme")
        confirm = browser.dom()
        assert 'id="who">acme<' in confirm, confirm[-800:]
        assert "key-acme" not in browser.url
        browser.click("#confirm")
        assert browser.url == f"{burro}{target}"
        evaluation = browser.dom()
        assert 'id="wins"' in evaluation and "401" not in evaluation
        # Signed in, a plain link from another site opens the page (the cookie is Lax).
        browser.navigate(f"{site}/")
        browser.click("#jobs")
        assert seeded.job_id in browser.dom()


def test_another_site_cannot_sign_the_browser_in(
    chromium_path: str, burro: str, seeded: Seeded, tmp_path: Path
) -> None:
    # A form on another site that posts the site owner's key to Burro (login CSRF).
    page = (
        f'<form id="f" method="post" action="{html.escape(burro)}/ui/login">'
        '<input name="key" value="key-acme"><button id="go" type="submit">go</button></form>'
    )
    with other_site(page) as site, Chromium(chromium_path, tmp_path / "profile") as browser:
        browser.navigate(f"{site}/")
        browser.click("#go")
        assert "403" in browser.dom()
        browser.navigate(f"{burro}/ui/jobs")
        assert 'action="/ui/login"' in browser.dom()  # not signed in: the sign-in form
        assert seeded.job_id not in browser.dom()
