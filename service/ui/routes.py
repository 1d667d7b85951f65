"""`/ui`: server-rendered pages for people, behind the same keys as the API.

A browser cannot easily send a bearer header, so the pages accept either
`Authorization: Bearer <key>` or a sign-in session (`service.ui.sessions` explains the cookie,
the one-time tickets behind `/ui/login?key=…` links, and why the flow is safe). Request logs
carry paths without query strings, so a key in a link never reaches a log. Every answer under
`/ui` carries a strict Content-Security-Policy (no scripts at all) and anti-framing headers.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import jinja2
import msgspec
import structlog
from litestar import MediaType, Request, Response, Router, get, post
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException
from litestar.params import Body, FromPath, FromQuery, QueryParameter
from litestar.response import Redirect

from service.context import Tenant, UsesResources, authenticate, today
from service.errors import BurroError, Unauthorized
from service.evaluations.records import Answer, Row
from service.evaluations.runner import evaluations, load_rows
from service.inference.aliases import list_aliases
from service.jobs import events as timeline
from service.jobs.records import DistillationOut
from service.jobs.transitions import jobs
from service.ui.drawing import Span, loss_chart, word_diff
from service.ui.sessions import (
    COOKIE,
    COOKIE_PATH,
    SESSION_SECONDS,
    close_session,
    issue_ticket,
    open_session,
    same_origin,
    session_tenant,
    ticket_tenant,
)

log = structlog.get_logger("burro.ui")

JOBS_PER_PAGE = 50
EVENTS_SHOWN = 500

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(stamp: int | None) -> str:
    if stamp is None:
        return "—"
    moment = datetime.datetime.fromtimestamp(stamp, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _usd(value: float) -> str:
    return f"${value:,.2f}" if value >= 0.01 else f"${value:.6f}".rstrip("0")


def _shutdown(day: datetime.date | None) -> str:
    """A shutdown date with how far off it is (today by the same clock as retirement)."""
    if day is None:
        return "—"
    left = (day - today()).days
    if left < 0:
        return f"{day.isoformat()} (shut down)"
    if left == 0:
        return f"{day.isoformat()} (today)"
    return f"{day.isoformat()} (in {left} day{'s' if left != 1 else ''})"


_STYLESHEET = (Path(__file__).parent / "templates" / "style.css").read_text()
_templates.filters["when"] = _when
_templates.filters["usd"] = _usd
_templates.filters["shutdown"] = _shutdown


def render(template: str, status_code: int = 200, **context: Any) -> Response[str]:
    html = _templates.get_template(template).render(**context)
    return Response(html, status_code=status_code, media_type=MediaType.HTML)


def _safe_next(target: str | None) -> str:
    """Only a path of these pages: never another site (an open redirect)."""
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/jobs"


async def provide_page_tenant(request: Request[Any, Any, Any], resources: UsesResources) -> str:
    """The tenant behind the bearer header, else behind the session cookie (401 otherwise)."""
    authorization = request.headers.get("authorization")
    token = request.cookies.get(COOKIE)
    if authorization is None and token:
        tenant = await session_tenant(resources.redis, token)
        if tenant is None:
            raise Unauthorized("Your sign-in has expired or was ended: sign in again.")
        await resources.limiter.check(tenant)
        return tenant
    return await authenticate(resources, authorization, _client(request))


def _client(request: Request[Any, Any, Any]) -> str | None:
    return request.client.host if request.client else None


def page_error(request: Request[Any, Any, Any], exc: Exception) -> Response[str]:
    """Errors as pages, with the same statuses as the API (a 401 offers the sign-in form)."""
    if isinstance(exc, BurroError):
        status, title, detail = exc.status_code, exc.title, exc.detail
    elif isinstance(exc, HTTPException):
        status, title, detail = exc.status_code, str(exc.detail), str(exc.detail)
    else:
        log.exception("ui.unhandled_error", path=request.url.path)
        status, title = 500, "Internal error"
        detail = "Burro failed to show this page; it has been logged."
    next_page: str | None = request.url.path if request.method == "GET" else None
    if request.url.path == "/ui/login":  # a mistyped ?key=: the retry form keeps the target
        next_page = _safe_next(request.query_params.get("next"))
    return render(
        "error.html", status, status=status, title=title, detail=detail, tenant=None, next=next_page
    )


# --- Sign in ---------------------------------------------------------------------------------


class LoginForm(msgspec.Struct, frozen=True, kw_only=True):
    key: str = ""
    ticket: str = ""
    next: str = "/ui/jobs"


class CrossSiteRequest(BurroError):
    status_code = 403
    code = "cross_site_request"
    title = "Refused: not sent from Burro's own page"


def _require_same_origin(request: Request[Any, Any, Any]) -> None:
    if not same_origin(request):
        raise CrossSiteRequest(
            "Sign in and out only from Burro's own pages (this request came from another site, "
            "or without an Origin header)."
        )


@get("/login", include_in_schema=False)
async def login_page(
    request: Request[Any, Any, Any],
    resources: UsesResources,
    key: FromQuery[str | None] = None,
    ticket: FromQuery[str | None] = None,
    next_page: Annotated[str | None, QueryParameter(name="next")] = None,
) -> Response[Any]:
    """The sign-in form. A link with `?key=` is checked and swapped for a one-time ticket (the
    key leaves the address bar); `?ticket=` asks the person to confirm whom they sign in as."""
    target = _safe_next(next_page)
    if key:
        tenant = await authenticate(resources, f"Bearer {key.strip()}", _client(request))
        fresh = await issue_ticket(resources.redis, tenant)
        query = urlencode({"ticket": fresh, "next": target})
        return Redirect(path=f"/ui/login?{query}", status_code=303)
    if ticket:
        who = await ticket_tenant(resources.redis, ticket, spend=False)
        if who is not None:
            return render("confirm.html", tenant=None, who=who, ticket=ticket, next=target)
        return render(
            "login.html", 401, tenant=None, next=target, note="That sign-in link has expired."
        )
    return render("login.html", tenant=None, next=target, note=None)


@post("/login", include_in_schema=False, status_code=303)
async def login_submit(
    request: Request[Any, Any, Any],
    resources: UsesResources,
    data: Annotated[LoginForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Response[Any]:
    _require_same_origin(request)
    if data.ticket:
        spent = await ticket_tenant(resources.redis, data.ticket, spend=True)
        if spent is None:
            raise Unauthorized("That sign-in link has expired or was used: sign in again.")
        tenant = spent
    else:
        tenant = await authenticate(resources, f"Bearer {data.key.strip()}", _client(request))
    session = await open_session(resources.redis, tenant)
    response: Response[Any] = Redirect(path=_safe_next(data.next), status_code=303)
    response.set_cookie(
        key=COOKIE,
        value=session,
        path=COOKIE_PATH,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="lax",  # why Lax is safe here: service.ui.sessions
        secure=request.url.scheme == "https",
    )
    log.info("ui.signed_in", tenant=tenant)
    return response


@get("/logout", include_in_schema=False)
async def logout_page() -> Response[Any]:
    """A GET changes nothing (any site can send one): it offers the sign-out button."""
    return render("logout.html", tenant=None)


@post("/logout", include_in_schema=False, status_code=303)
async def logout(request: Request[Any, Any, Any], resources: UsesResources) -> Response[Any]:
    _require_same_origin(request)
    token = request.cookies.get(COOKIE)
    if token:
        await close_session(resources.redis, token)
    response: Response[Any] = Redirect(path="/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


@get("/style.css", include_in_schema=False, media_type="text/css")
async def stylesheet() -> Response[str]:
    """The pages' one stylesheet, served so the CSP can forbid inline styles."""
    return Response(_STYLESHEET, media_type="text/css")


@get("/", include_in_schema=False)
async def home() -> Response[Any]:
    return Redirect(path="/ui/jobs", status_code=303)


# --- Pages -----------------------------------------------------------------------------------


@get("/jobs", include_in_schema=False, dependencies={"tenant": Provide(provide_page_tenant)})
async def jobs_page(
    resources: UsesResources, tenant: Tenant, after: FromQuery[str | None] = None
) -> Response[str]:
    page = await jobs(resources.redis).page(tenant, limit=JOBS_PER_PAGE, after=after)
    table = resources.models
    shutdowns = {j.id: table.shutdown(j.fine_tuned_model or j.model, j.model) for j in page.data}
    aliases = [] if after is not None else await list_aliases(resources.redis, tenant)
    return render(
        "jobs.html",
        tenant=tenant,
        jobs=page.data,
        has_more=page.has_more,
        shutdowns=shutdowns,
        aliases=[(a, table.shutdown(a.model, a.base_model)) for a in aliases],
    )


@get(
    "/jobs/{job_id:str}",
    include_in_schema=False,
    dependencies={"tenant": Provide(provide_page_tenant)},
)
async def job_page(
    resources: UsesResources, tenant: Tenant, job_id: FromPath[str]
) -> Response[str]:
    redis = resources.redis
    job = await jobs(redis).get_for(tenant, job_id)
    events, more_events = await timeline.list_events(redis, job.id, limit=EVENTS_SHOWN)
    metrics = await timeline.load_metrics(redis, job.id)
    evaluation_page = await evaluations(redis).page(
        tenant, limit=20, where=lambda e: e.job == job.id
    )
    return render(
        "job.html",
        tenant=tenant,
        job=job,
        events=events,
        more_events=more_events,
        status_events=[e for e in events if e.type == "status"],
        chart=loss_chart(metrics.data),
        evaluations=evaluation_page.data,
        shutdown=resources.models.shutdown(job.fine_tuned_model or job.model, job.model),
        distillation=None if job.distillation is None else DistillationOut.of(job),
    )


@dataclass(frozen=True)
class SideView:
    answer: Answer
    spans: list[Span]


@dataclass(frozen=True)
class RowView:
    index: int
    line: int
    prompt: list[Any]
    reference: str
    winner: str | None
    tuned: SideView
    base: SideView

    @classmethod
    def of(cls, row: Row) -> RowView:
        return cls(
            index=row.index,
            line=row.line,
            prompt=list(row.prompt),
            reference=row.reference,
            winner=row.winner,
            tuned=SideView(row.fine_tuned, word_diff(row.fine_tuned.text, row.reference)),
            base=SideView(row.baseline, word_diff(row.baseline.text, row.reference)),
        )


@get(
    "/evaluations/{evaluation_id:str}",
    include_in_schema=False,
    dependencies={"tenant": Provide(provide_page_tenant)},
)
async def evaluation_page(
    resources: UsesResources, tenant: Tenant, evaluation_id: FromPath[str]
) -> Response[str]:
    evaluation = await evaluations(resources.redis).get_for(tenant, evaluation_id)
    rows = await load_rows(resources.redis, evaluation.id)
    return render(
        "evaluation.html",
        tenant=tenant,
        evaluation=evaluation,
        rows=[RowView.of(r) for r in rows],
    )


router = Router(
    path="/ui",
    route_handlers=[
        login_page,
        login_submit,
        logout_page,
        logout,
        stylesheet,
        home,
        jobs_page,
        job_page,
        evaluation_page,
    ],
    exception_handlers={Exception: page_error},
    request_max_body_size=4096,  # the sign-in form is the only body
    include_in_schema=False,
    tags=["ui"],
)
