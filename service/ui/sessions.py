"""The pages' sign-in: opaque sessions in Redis, one-time sign-in tickets, and the checks that
keep another site from signing a browser in or out.

The flow, and why it is safe:
- The cookie `burro_session` holds a random session id, never the API key. Redis keeps only
  the id's SHA-256 (a copy of the store holds no usable session), mapped to the tenant, for
  `SESSION_SECONDS`; signing out deletes it. The cookie is HttpOnly, `Secure` over https,
  scoped to `/ui` (the API under `/v1` never reads it) and SameSite=Lax.
- Lax, not Strict: with Strict, a browser that follows a link from another site (a chat, a
  mail, a CI log) does not send the cookie, so a signed-in person lands on "401". Lax sends it
  on top-level GET navigations only; every GET under `/ui` only shows the tenant's own data to
  the tenant's own browser (no GET changes anything), other sites cannot read the answer (same
  origin policy) nor frame it (`frame-ancestors 'none'`, `X-Frame-Options: DENY`), and every
  state-changing request (sign in, sign out) is a POST whose Origin must be Burro's own.
- Signing in is always a same-origin POST from Burro's own form. A link
  `/ui/login?key=…&next=…` (the README prints one) does not sign in by itself, or any site could
  sign a visitor in as the site's own tenant (login CSRF): it checks the key, swaps it for a
  one-time ticket (so the key leaves the address bar and history at once) and shows
  "Sign in as tenant X?" with one button. The ticket is random, kept hashed, lives
  `TICKET_SECONDS` and is spent by the POST; the person sees which tenant they sign in as.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from litestar import Request
from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope
from redis.asyncio import Redis

from service.store import PREFIX

COOKIE = "burro_session"
COOKIE_PATH = "/ui"
SESSION_SECONDS = 12 * 3600
TICKET_SECONDS = 300

# Every /ui answer: no scripts at all, styles only from Burro, never framed, never sniffed.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    # The confirm page's address holds a ticket: never hand it to another site. (Not
    # `no-referrer`: with it, browsers send `Origin: null` on our own form posts.)
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def _key(kind: str, token: str) -> str:
    return f"{PREFIX}:ui-{kind}:{hashlib.sha256(token.encode()).hexdigest()}"


async def open_session(redis: Redis, tenant: str) -> str:
    """A new session for `tenant`; returns the id for the cookie."""
    token = secrets.token_urlsafe(32)
    await redis.set(_key("session", token), tenant, ex=SESSION_SECONDS)
    return token


async def session_tenant(redis: Redis, token: str) -> str | None:
    """The tenant of a live session, or None."""
    raw = await redis.get(_key("session", token))
    return None if raw is None else raw.decode() if isinstance(raw, bytes) else str(raw)


async def close_session(redis: Redis, token: str) -> None:
    await redis.delete(_key("session", token))


async def issue_ticket(redis: Redis, tenant: str) -> str:
    """A one-time ticket that a same-origin POST can swap for a session of `tenant`."""
    ticket = secrets.token_urlsafe(32)
    await redis.set(_key("ticket", ticket), tenant, ex=TICKET_SECONDS)
    return ticket


async def ticket_tenant(redis: Redis, ticket: str, *, spend: bool) -> str | None:
    """The tenant a ticket signs in as (spent when `spend`), or None when unknown or expired."""
    key = _key("ticket", ticket)
    raw = await (redis.getdel(key) if spend else redis.get(key))
    return None if raw is None else raw.decode() if isinstance(raw, bytes) else str(raw)


def same_origin(request: Request[Any, Any, Any]) -> bool:
    """Whether a state-changing request comes from one of Burro's own pages.

    Browsers send `Origin` on every POST (and `Sec-Fetch-Site`, which pages cannot forge);
    a request with neither is refused, as no form of Burro's sends one.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site != "same-origin":
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return False
    host = request.headers.get("host", "")
    return origin == f"{request.url.scheme}://{host}"


def add_security_headers(message: Message, scope: Scope) -> None:
    """`before_send` hook: the security headers on every answer under `/ui`, errors and 404s
    included."""
    if message["type"] != "http.response.start" or not scope.get("path", "").startswith("/ui"):
        return
    headers = MutableScopeHeaders.from_message(message)
    for name, value in SECURITY_HEADERS.items():
        headers[name] = value
