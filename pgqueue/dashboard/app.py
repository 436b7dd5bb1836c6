"""The dashboard's Starlette app: routes that read a page (data.py) and render it (templates/, autoescaped),
and the actions, POSTs that call pgqueue's Python API. Blocking database work runs in Starlette's thread
pool, so a slow page never holds up another."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import math
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..exceptions import PgQueueError
from ..health import Thresholds
from . import data
from .security import AUTH_COOKIE, AuthHook, Guard, GuardMiddleware, safe_next

FLASH_COOKIE = "pgqueue_flash"
MAX_FORM_BYTES = 64 * 1024

#: Each action: the function doing it (data.py, over the Python API) and the form field it takes.
ACTIONS: dict[str, tuple[Callable[..., str], str | None]] = {
    "requeue": (data.requeue_job, "id"),
    "cancel": (data.cancel_job, "id"),
    "delete": (data.delete_job, "id"),
    "requeue-failed": (data.requeue_failed, "queue"),
    "pause": (data.pause_queue, "queue"),
    "resume": (data.resume_queue, "queue"),
    "suspend": (data.suspend_workers, None),
    "unsuspend": (data.resume_workers, None),
}


# -- template filters ------------------------------------------------------------------------------------
def _duration(seconds: float | None) -> str:
    """``850 ms``, ``42 s``, ``3 min 5 s``, ``2 h 10 min``, ``3 d 4 h``."""
    if seconds is None or math.isnan(seconds):
        return ""
    if math.isinf(seconds):
        return "no limit"
    sign, s = ("-" if seconds < 0 else ""), abs(seconds)
    if s < 1:
        return f"{sign}{s * 1000:.0f} ms"
    if s < 60:
        return f"{sign}{s:.1f} s" if s < 10 else f"{sign}{s:.0f} s"
    units = [(86400, "d"), (3600, "h"), (60, "min"), (1, "s")]
    parts: list[str] = []
    for size, name in units:
        if s >= size and len(parts) < 2:
            parts.append(f"{int(s // size)} {name}")
            s %= size
        elif parts:
            break
    return sign + " ".join(parts)


def _since(value: datetime | None, now: datetime) -> str:
    return "" if value is None else _duration((now - value).total_seconds())


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def _call(job: Any, chars: int) -> str:
    """``tasks.add(1, 2, "b": 3)`` from a list row, whose arguments are JSON text cut after ``chars``
    characters (the statement reads one more, so a cut shows)."""
    def inner(text: str) -> str:
        return text[1:-1] if len(text) <= chars else text[1:chars] + "…"

    parts = [inner(job.args), "" if job.kwargs == "{}" else inner(job.kwargs)]
    return f"{job.func_name}({', '.join(p for p in parts if p)})"


def _utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


class Dashboard:
    """The app's state: where its data comes from, its guard, its templates, and its options."""

    def __init__(self, dsn: str | None, read_only: bool, guard: Guard, refresh: float, limits: data.Limits,
                 thresholds: Thresholds) -> None:
        self.dsn = dsn
        self.thresholds = thresholds
        self.read_only = read_only
        self.guard = guard
        self.refresh = refresh
        self.reader = data.Reader(dsn, limits)
        self.env = jinja2.Environment(loader=jinja2.PackageLoader("pgqueue.dashboard", "templates"),
                                      autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                                      lstrip_blocks=True)
        self.env.filters.update(ts=lambda v: "" if v is None else f"{_utc(v):%Y-%m-%d %H:%M:%S}",
                                hm=lambda v: f"{_utc(v):%H:%M}", duration=_duration, pretty=_pretty,
                                call=lambda job: _call(job, limits.chars))
        self.env.globals.update(STATUSES=data.STATUSES, LIVE=data.LIVE, order_note=data.ORDER)

    # -- rendering ----------------------------------------------------------------------------------
    def render(self, request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
        root = str(request.scope.get("root_path", "")).rstrip("/")

        def url(path: str, **params: Any) -> str:
            query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
            return root + path + (f"?{query}" if query else "")

        now = context.get("now") or datetime.now().astimezone()
        flash = _read_flash(request)
        page = self.env.get_template(template).render(
            url=url, static=lambda name: f"{root}/static/{name}", csrf=self.guard.csrf_token(request),
            read_only=self.read_only, refresh=self.refresh, flash=flash, here=request.url.path
            + (f"?{request.url.query}" if request.url.query else ""), section=template.split(".")[0],
            since=lambda value: _since(value, now), protected=self.guard.token is not None,
            **{"now": now, **context})
        response = HTMLResponse(page, status_code=status)
        if flash:
            response.delete_cookie(FLASH_COOKIE, path=root or "/")
        return response

    def error(self, request: Request, status: int, message: str) -> Response:
        return self.render(request, "error.html", {"status": status, "message": message}, status)

    async def page(self, request: Request, template: str, read: Callable[..., Any], *args: Any) -> Response:
        try:
            context = await run_in_threadpool(read, *args)
        except data.BadRequest as exc:
            return self.error(request, 400, str(exc))
        except PgQueueError as exc:
            return self.error(request, 503, f"The database cannot be read: {exc}")
        if context is None:
            return self.error(request, 404, "No such job: it never existed, or it was deleted (by hand, or by its "
                                            "result_ttl or failure_ttl).")
        return self.render(request, template, context)

    # -- pages --------------------------------------------------------------------------------------
    async def overview(self, request: Request) -> Response:
        return await self.page(request, "overview.html", data.overview, self.reader)

    async def queue(self, request: Request) -> Response:
        name = request.query_params.get("name", "")
        if not name:
            return self.error(request, 400, "Which queue? /queue?name=NAME")
        params = dict(request.query_params)
        params["queue"] = name
        try:
            filters = data.parse_filters(params, default_status="queued")
        except data.BadRequest as exc:
            return self.error(request, 400, str(exc))
        return await self.page(request, "queue.html", data.queue_page, self.reader, name, filters)

    async def jobs(self, request: Request) -> Response:
        try:
            filters = data.parse_filters(dict(request.query_params))
        except data.BadRequest as exc:
            return self.error(request, 400, str(exc))
        return await self.page(request, "jobs.html", data.job_list, self.reader, filters)

    async def job(self, request: Request) -> Response:
        id = request.query_params.get("id", "").strip()
        if not id:
            return self.error(request, 400, "Which job? /job?id=JOB_ID")
        return await self.page(request, "job.html", data.job_page, self.reader, id)

    async def workers(self, request: Request) -> Response:
        return await self.page(request, "workers.html", data.workers_page, self.reader)

    async def health(self, request: Request) -> Response:
        return await self.page(request, "health.html", data.health_page, self.reader, self.thresholds)

    # -- actions ------------------------------------------------------------------------------------
    async def action(self, request: Request) -> Response:
        name = request.path_params["name"]
        if self.read_only:
            return PlainTextResponse("This dashboard is read-only (--read-only): it does not act on jobs or queues.",
                                     status_code=403)
        if name not in ACTIONS:
            return PlainTextResponse(f"No action {name!r}.", status_code=404)
        form = await _form(request)
        if form is None:
            return PlainTextResponse("An action is a form POST (application/x-www-form-urlencoded, at most 64 KiB).",
                                     status_code=415)
        if not self.guard.csrf_ok(request, form):
            return PlainTextResponse("The form's CSRF token is missing or wrong: reload the page and try again.",
                                     status_code=403)
        func, field = ACTIONS[name]
        args: list[Any] = [self.dsn]
        if field is not None:
            value = form.get(field, "")
            if not value:
                return PlainTextResponse(f"The action {name} needs a {field}.", status_code=400)
            args.append(value)
        try:
            message = await run_in_threadpool(func, *args)
        except (PgQueueError, ValueError) as exc:
            message = f"Could not {name.replace('-', ' ')}: {exc}"
        root = str(request.scope.get("root_path", "")).rstrip("/")
        response = RedirectResponse(safe_next(form.get("next"), root), status_code=303)
        _set_flash(request, response, message)
        return response

    # -- signing in ---------------------------------------------------------------------------------
    async def login(self, request: Request) -> Response:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        target = safe_next(request.query_params.get("next"), root)
        if self.guard.token is None:
            return RedirectResponse(target, status_code=303)
        if request.method == "GET":
            return self.render(request, "login.html", {"next": target, "wrong": False})
        form = await _form(request)
        if form is None or not self.guard.csrf_ok(request, form):
            return PlainTextResponse("The form's CSRF token is missing or wrong: reload the page and try again.",
                                     status_code=403)
        target = safe_next(form.get("next"), root)
        if not self.guard.token_ok(form.get("token", "")):
            return self.render(request, "login.html", {"next": target, "wrong": True}, status=401)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(AUTH_COOKIE, self.guard.login_cookie(), path=root or "/", httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response


async def _form(request: Request) -> dict[str, str] | None:
    """The urlencoded form of a POST (no multipart: the dashboard's forms never send files)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return None


def _set_flash(request: Request, response: Response, message: str) -> None:
    root = str(request.scope.get("root_path", "")).rstrip("/")
    value = base64.urlsafe_b64encode(message[:1000].encode()).decode()
    response.set_cookie(FLASH_COOKIE, value, path=root or "/", max_age=60, httponly=True, samesite="strict")


def _read_flash(request: Request) -> str | None:
    value = request.cookies.get(FLASH_COOKIE)
    if not value:
        return None
    try:
        return base64.urlsafe_b64decode(value.encode()).decode()
    except (ValueError, binascii.Error):
        return None


def create_app(dsn: str | None = None, *, read_only: bool = False, token: str | None = None,
               auth: AuthHook | None = None, allowed_hosts: list[str] | None = None, refresh: float = 5.0,
               limits: data.Limits | None = None, health: Thresholds | None = None) -> Starlette:
    """The dashboard as an ASGI app, to serve with any ASGI server or mount in your own app.

    ``dsn``: the database (default: as everywhere in pgqueue). ``read_only``: no action is shown, and every
    action is refused. ``token``: every request must carry it (the login form, or ``Authorization: Bearer``).
    ``auth``: instead of a token, a function of the Starlette ``Request`` (sync or async) that says whether
    it may go through, e.g. your own app's session check. Without either, only requests whose ``Host`` is
    a loopback name are answered, unless ``allowed_hosts`` lists the names to answer. ``refresh``: seconds
    between two live refreshes of an open page (0: none). ``limits``: the bounds that keep pages cheap on a
    big history (data.Limits). ``health``: when the health page calls a finding a problem (as ``pgqueue
    doctor``'s options: health.Thresholds).
    """
    guard = Guard(token, auth, allowed_hosts)
    dash = Dashboard(dsn, read_only, guard, refresh, limits or data.Limits(), health or Thresholds())
    routes = [
        Route("/", dash.overview),
        Route("/queue", dash.queue),
        Route("/jobs", dash.jobs),
        Route("/job", dash.job),
        Route("/workers", dash.workers),
        Route("/health", dash.health),
        Route("/action/{name}", dash.action, methods=["POST"]),
        Route("/login", dash.login, methods=["GET", "POST"]),
        Mount("/static", StaticFiles(packages=[("pgqueue.dashboard", "static")]), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        dash.reader.close()

    app = Starlette(routes=routes, middleware=[Middleware(GuardMiddleware, guard=guard)], lifespan=lifespan)
    app.state.dashboard = dash
    return app
