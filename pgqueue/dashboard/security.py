"""Who may see the dashboard and act on it.

- **Where it listens.** ``pgqueue dashboard`` binds to 127.0.0.1 unless told otherwise, and refuses any
  other address without a token (:func:`check_bind`). Without a token or an auth hook, requests must name a
  loopback host in their ``Host`` header, so that a web page elsewhere cannot reach a local dashboard
  through DNS rebinding.
- **The token.** With a token, every request needs it: as ``Authorization: Bearer TOKEN``, or once in the
  login form, which sets a cookie (HttpOnly, SameSite=Strict) holding an HMAC of it, never the token. An
  auth hook (a function of the request) can stand in for the token when the app is mounted in another.
- **Actions** are POSTs with a CSRF token: an HMAC, with a key of this process, of a random cookie
  (double submit, signed: a cookie planted by a neighbouring site does not make a valid token). A POST
  whose Origin is another site is refused too.
- **Every response** forbids framing, sniffing and any script, style or request to another origin
  (Content-Security-Policy): the dashboard uses only its own static files.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp

CSRF_COOKIE = "pgqueue_csrf"
AUTH_COOKIE = "pgqueue_auth"
CSRF_FIELD = "csrf_token"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

AuthHook = Callable[[Request], bool | Awaitable[bool]]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine's loopback interface only."""
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token: ValueError, one line saying what to do."""
    if not is_loopback(host) and not token:
        raise ValueError(
            f"--host {host} is not a loopback address: anyone who reaches it could read job arguments and "
            "results and requeue, cancel or delete jobs; pass --token TOKEN (or set PGQUEUE_DASHBOARD_TOKEN), "
            "or keep the default 127.0.0.1")


def _hmac(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


class Guard:
    """The checks above, for one app: its token or hook, its CSRF key, the hosts it answers."""

    def __init__(self, token: str | None, auth: AuthHook | None, allowed_hosts: list[str] | None) -> None:
        if token is not None and not token:
            raise ValueError("the dashboard's token must not be empty")
        self.token = token
        self.auth = auth
        self._csrf_key = secrets.token_bytes(32)
        self._login_key = hashlib.sha256(b"pgqueue-dashboard-login:" + (token or "").encode()).digest()
        if allowed_hosts is None and token is None and auth is None:
            self.allowed_hosts: list[str] | None = ["loopback"]
        else:
            self.allowed_hosts = allowed_hosts
        self.protected = token is not None or auth is not None

    # -- hosts ------------------------------------------------------------------------------------
    def host_allowed(self, request: Request) -> bool:
        if self.allowed_hosts is None:
            return True
        host = urlsplit("//" + request.headers.get("host", "")).hostname or ""
        return any(is_loopback(host) if allowed == "loopback" else host == allowed.lower()
                   for allowed in self.allowed_hosts)

    # -- the token --------------------------------------------------------------------------------
    def login_cookie(self) -> str:
        return _hmac(self._login_key, "logged in")

    def token_ok(self, given: str) -> bool:
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())

    async def signed_in(self, request: Request) -> bool:
        if self.token is not None:
            bearer = request.headers.get("authorization", "")
            if bearer.lower().startswith("bearer ") and self.token_ok(bearer[7:].strip()):
                return True
            cookie = request.cookies.get(AUTH_COOKIE, "")
            return bool(cookie) and hmac.compare_digest(cookie, self.login_cookie())
        if self.auth is not None:
            answer = self.auth(request)
            return bool(await answer) if isinstance(answer, Awaitable) else bool(answer)
        return True

    # -- CSRF -------------------------------------------------------------------------------------
    def csrf_token(self, request: Request) -> str:
        return _hmac(self._csrf_key, request.state.csrf_cookie)

    def csrf_ok(self, request: Request, form: dict[str, str]) -> bool:
        cookie = request.cookies.get(CSRF_COOKIE)
        given = form.get(CSRF_FIELD, "")
        if not cookie or not given or not hmac.compare_digest(given, _hmac(self._csrf_key, cookie)):
            return False
        origin = request.headers.get("origin")  # sent by browsers with every POST: this site's, or refused
        if origin is None:
            return True
        hosts = {request.headers.get("host"), request.headers.get("x-forwarded-host")}
        return origin != "null" and urlsplit(origin).netloc in hosts


class GuardMiddleware(BaseHTTPMiddleware):
    """Host check, sign-in, the CSRF cookie and the security headers, around every request."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        super().__init__(app)
        self.guard = guard

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        guard = self.guard
        if not guard.host_allowed(request):
            return _secured(PlainTextResponse(
                "This dashboard answers only requests to this machine's loopback address (127.0.0.1, localhost): "
                "start it with a token to reach it under another name.", status_code=421))
        cookie = request.cookies.get(CSRF_COOKIE)
        new_cookie = None if cookie else secrets.token_urlsafe(32)
        request.state.csrf_cookie = cookie or new_cookie
        path = request.url.path[len(request.scope.get("root_path", "")):] or "/"
        if not path.startswith(("/static/", "/login")) and not await guard.signed_in(request):
            if guard.token is None:
                return _secured(PlainTextResponse("Not allowed.", status_code=403))
            if request.method == "GET":
                response: Response = RedirectResponse(_root(request) + "/login?" + _next_query(request),
                                                      status_code=303)
            else:
                response = PlainTextResponse("Sign in first: this dashboard needs its token.", status_code=401)
        else:
            response = await call_next(request)
        if new_cookie:
            response.set_cookie(CSRF_COOKIE, new_cookie, path=_root(request) or "/", httponly=True,
                                samesite="strict", secure=request.url.scheme == "https")
        return _secured(response)


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _next_query(request: Request) -> str:
    from urllib.parse import urlencode

    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return urlencode({"next": here})


def safe_next(value: Any, root: str) -> str:
    """Where to go back to after a form: a path of this site, else the overview (no open redirect)."""
    if isinstance(value, str) and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return (root or "") + "/"


def _secured(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")
    return response
