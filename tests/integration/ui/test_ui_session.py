"""Signing in to the pages over HTTP: an opaque session in Redis (never the key), a same-origin
POST to sign in or out, `?key=` links that only lead to a confirmation, and the security
headers on every `/ui` answer."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
from redis.asyncio import Redis

from tests.support.seeds import Seeded
from tests.support.store import RedisSession


def origin_of(client: httpx.Client) -> dict[str, str]:
    """The headers a browser sends with a form posted from Burro's own page."""
    return {"Origin": str(client.base_url).rstrip("/"), "Sec-Fetch-Site": "same-origin"}


def sign_in(client: httpx.Client, **headers: str) -> httpx.Response:
    response = client.post(
        "/ui/login",
        data={"key": "key-acme", "next": "/ui/jobs"},
        headers={**origin_of(client), **headers},
    )
    assert response.status_code == 303, response.text
    return response


async def ui_sessions(redis: Redis) -> dict[str, int]:
    """Every stored page session: its key and its time to live in seconds."""
    keys = await redis.keys("burro:ui-session:*")
    return {key.decode(): await redis.ttl(key) for key in keys}


def cookie_attributes(response: httpx.Response) -> set[str]:
    return {a.strip().lower() for a in response.headers["set-cookie"].split(";")}


def test_the_cookie_is_an_opaque_session_id_kept_in_redis_with_an_expiry(
    anonymous: httpx.Client, seeded: Seeded, store: RedisSession
) -> None:
    response = sign_in(anonymous)
    cookie = response.headers["set-cookie"]
    session = cookie.split(";", 1)[0].split("=", 1)[1]
    assert "key-acme" not in cookie and len(session) >= 32
    attributes = cookie_attributes(response)
    assert {"httponly", "samesite=lax", "path=/ui", "max-age=43200"} <= attributes
    assert "secure" not in attributes  # plain http here; see the https test
    [(key, ttl)] = store(ui_sessions).items()
    assert session not in key  # only its hash is stored
    assert 0 < ttl <= 43200
    assert anonymous.get(f"/ui/jobs/{seeded.job_id}").status_code == 200
    # The session is for the pages only: the API still wants the header.
    assert anonymous.get(f"/v1/jobs/{seeded.job_id}").status_code == 401


def test_the_cookie_is_secure_when_served_over_https(anonymous: httpx.Client) -> None:
    # A TLS-terminating proxy on loopback says so with X-Forwarded-Proto.
    response = anonymous.post(
        "/ui/login",
        data={"key": "key-acme"},
        headers={
            "X-Forwarded-Proto": "https",
            "Origin": "https://" + str(anonymous.base_url.netloc.decode()),
            "Sec-Fetch-Site": "same-origin",
        },
    )
    assert response.status_code == 303, response.text
    assert "secure" in cookie_attributes(response)


def test_signing_out_deletes_the_session(anonymous: httpx.Client, seeded: Seeded) -> None:
    sign_in(anonymous)
    stolen = dict(anonymous.cookies)
    out = anonymous.post("/ui/logout", headers=origin_of(anonymous))
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    assert anonymous.get("/ui/jobs").status_code == 401
    # The old id is dead in Redis, not only gone from this browser.
    with httpx.Client(base_url=anonymous.base_url, cookies=stolen) as replay:
        assert replay.get("/ui/jobs").status_code == 401
    # A GET changes nothing: it only offers the button.
    sign_in(anonymous)
    assert anonymous.get("/ui/logout").status_code == 200
    assert anonymous.get("/ui/jobs").status_code == 200


def test_a_login_post_from_another_origin_is_refused_and_sets_nothing(
    anonymous: httpx.Client, seeded: Seeded
) -> None:
    for headers in (
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {},
    ):
        refused = anonymous.post("/ui/login", data={"key": "key-acme"}, headers=headers)
        assert refused.status_code == 403, headers
        assert "set-cookie" not in refused.headers
    assert anonymous.get("/ui/jobs").status_code == 401


def test_a_key_link_only_leads_to_a_confirmation_naming_the_tenant(
    anonymous: httpx.Client, seeded: Seeded
) -> None:
    target = f"/ui/jobs/{seeded.job_id}"
    link = anonymous.get("/ui/login", params={"key": "key-acme", "next": target})
    assert link.status_code == 303 and "set-cookie" not in link.headers
    location = link.headers["location"]
    assert "key-acme" not in location  # the key leaves the address bar
    query = parse_qs(urlsplit(location).query)
    assert query["next"] == [target]
    confirm = anonymous.get(location)
    assert confirm.status_code == 200 and "set-cookie" not in confirm.headers
    assert re.search(r'id="who">acme<', confirm.text)
    assert anonymous.get("/ui/jobs").status_code == 401  # not signed in yet
    ticket = query["ticket"][0]
    posted = anonymous.post(
        "/ui/login", data={"ticket": ticket, "next": target}, headers=origin_of(anonymous)
    )
    assert posted.status_code == 303 and posted.headers["location"] == target
    assert anonymous.get(target).status_code == 200
    # A ticket signs in once.
    with httpx.Client(base_url=anonymous.base_url) as other:
        again = other.post("/ui/login", data={"ticket": ticket}, headers=origin_of(other))
        assert again.status_code == 401


def test_a_mistyped_key_keeps_the_target_on_the_retry_form(
    anonymous: httpx.Client, seeded: Seeded
) -> None:
    target = f"/ui/evaluations/{seeded.evaluation_id}"
    wrong = anonymous.get("/ui/login", params={"key": "key-acne", "next": target})
    assert wrong.status_code == 401
    assert f'name="next" value="{target}"' in wrong.text


def test_the_sign_in_form_never_redirects_off_site(anonymous: httpx.Client) -> None:
    posted = anonymous.post(
        "/ui/login",
        data={"key": "key-acme", "next": "https://evil.example/"},
        headers=origin_of(anonymous),
    )
    assert posted.status_code == 303 and posted.headers["location"] == "/ui/jobs"
    link = anonymous.get("/ui/login", params={"key": "key-acme", "next": "//evil"})
    assert parse_qs(urlsplit(link.headers["location"]).query)["next"] == ["/ui/jobs"]


def test_every_ui_answer_carries_the_security_headers(
    anonymous: httpx.Client, client: httpx.Client, seeded: Seeded
) -> None:
    answers = [
        client.get("/ui/jobs"),
        client.get(f"/ui/evaluations/{seeded.evaluation_id}"),
        anonymous.get("/ui/login"),
        anonymous.get("/ui/jobs"),  # 401 page
        client.get("/ui/jobs/job_nope"),  # 404 page
        anonymous.get("/ui/no-such-page"),  # no route at all
        anonymous.get("/ui/style.css"),
        anonymous.post("/ui/login", data={"key": "x"}),  # 403
    ]
    for answer in answers:
        csp = answer.headers.get("content-security-policy", "")
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, answer.url
        assert "script-src" not in csp  # no scripts at all
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["x-content-type-options"] == "nosniff"
    page = answers[0].text
    assert "<style" not in page and "style=" not in page  # all styling from /ui/style.css
    assert 'href="/ui/style.css"' in page
    assert answers[-2].headers["content-type"].startswith("text/css")
