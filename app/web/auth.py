"""Who may do what, decided in one place before any route runs.

On loopback (and LOUPE_LOGIN=auto) nobody logs in and everyone may do
everything; only changes a browser sends from another site, and browser
requests under a host name that is not loopback (DNS rebinding), are refused,
so that a web page cannot reach into a local Loupe. Otherwise every request but
/login, /healthz and /static needs a session cookie (browsers, with a CSRF
token on every change) or an API token (scripts: `Authorization: Bearer ...`),
and a change needs the role POLICY names for its path.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from app.accounts import sessions, tokens
from app.accounts.sessions import Identity
from app.accounts.users import role_at_least
from app.config import Settings, is_loopback
from app.web.errors import error_response, wants_json

COOKIE = "loupe_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = frozenset({"/healthz", "/login", "/favicon.ico"})  # and everything under /static/
MAX_FORM_BYTES = 1024 * 1024  # a form read here for its csrf_token; bigger ones must send the header

# The least role for a change (POST, PUT, PATCH, DELETE) under a path; `*` is one path segment and a
# pattern also covers what lies below it. First match wins. Anything not listed needs an admin, so a
# new route is closed until someone decides who may use it. Reading needs only a login.
POLICY: tuple[tuple[str, str], ...] = (
    ("/logout", "labeller"),
    ("/api/images/*/labels", "labeller"),  # and .../labels/undo
    ("/api/images/*/audit", "labeller"),  # blind audits re-show a labeller's own earlier images
    ("/api/images/*/exclude", "reviewer"),  # as a review's exclude; bulk ones are checked by their route
    ("/api/images/*/include", "reviewer"),
    ("/label", "labeller"),  # the labelling page's save-and-next (audit answers too)
    ("/api/labels", "labeller"),  # bulk labels from the browse page
    ("/api/similar", "labeller"),  # search by an uploaded image: a small job, nothing imported
    ("/api/tags/*/retire", "admin"),  # takes a key away from everyone's keyboard
    ("/api/tags", "labeller"),
    ("/taxonomy/tags", "labeller"),
    ("/api/flags", "reviewer"),
    ("/api/quality", "reviewer"),
    ("/quality/actions", "reviewer"),
)
DEFAULT_ROLE = "admin"  # taxonomy, image upload, snapshots, jobs, and anything new


def required_role(path: str) -> str:
    """The least role that may change things under `path`."""
    parts = [p for p in path.split("/") if p]
    for pattern, role in POLICY:
        want = [p for p in pattern.split("/") if p]
        if len(parts) >= len(want) and all(w in ("*", p) for w, p in zip(want, parts)):
            return role
    return DEFAULT_ROLE


def _header(scope, name: str) -> str | None:
    key = name.encode()
    for k, v in scope["headers"]:
        if k == key:
            return v.decode("latin-1")
    return None


def cross_site(scope) -> bool:
    """True when a browser says the request comes from a page of another site (or another port)."""
    if _header(scope, "sec-fetch-site") == "cross-site":
        return True
    origin = _header(scope, "origin")
    if origin is None:  # scripts and curl send none; browsers always send one with a POST
        return False
    return origin == "null" or urlsplit(origin).netloc.lower() != (_header(scope, "host") or "").lower()


def _foreign_host(scope) -> bool:
    """A browser asking for a host name that is not loopback: a DNS-rebinding page, when nobody logs in."""
    if _header(scope, "origin") is None and _header(scope, "sec-fetch-site") is None:
        return False
    host = urlsplit("//" + (_header(scope, "host") or "")).hostname or ""
    return not is_loopback(host)


def _refuse(scope, status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    return error_response(Request(scope), status, detail, headers)


def _login_url(scope) -> str:
    """/login?next=the page to come back to (for htmx, the page it was sent from, not the fragment's URL)."""
    page = _header(scope, "hx-current-url")
    if page:
        parts = urlsplit(page)
        here = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    else:
        query = scope.get("query_string", b"").decode("latin-1")
        here = scope["path"] + (f"?{query}" if query else "")
    return "/login" if here == "/" else f"/login?next={quote(here, safe='')}"


def _not_logged_in(scope, method: str) -> Response:
    if _header(scope, "hx-request") == "true":  # htmx follows HX-Redirect, not a 303
        return Response(status_code=401, headers={"HX-Redirect": _login_url(scope)})
    if method == "GET" and not wants_json(Request(scope)):
        return RedirectResponse(_login_url(scope), status_code=303)
    return JSONResponse(
        {"detail": "log in first (/login), or send an API token as 'Authorization: Bearer ...'"},
        status_code=401, headers={"WWW-Authenticate": "Bearer"},
    )


def _cookie(scope, name: str) -> str:
    raw = _header(scope, "cookie")
    if not raw:
        return ""
    for part in raw.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""


def _bearer(scope) -> str | None:
    value = _header(scope, "authorization")
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip()
    return None


class Auth:
    """A plain ASGI middleware (BaseHTTPMiddleware costs a millisecond a request; see timing.py)."""

    def __init__(self, app, *, loupe: FastAPI, settings: Settings):
        self.app = app
        self.loupe = loupe
        self.settings = settings

    def _identify(self, bearer: str | None, cookie: str) -> Identity | None:
        db = self.loupe.state.db
        with db.reading() as session:
            if bearer is None:
                return sessions.find_session(session, cookie)
            found = tokens.find_token(session, bearer)
        if found is None:
            return None
        identity, due = found
        if due:
            with db.writing() as session:
                tokens.touch_token(session, bearer)
        return identity

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        scope.setdefault("state", {}).update(user=None, csrf="")
        refusal, receive = await self._check(scope, receive)
        if refusal is not None:
            return await refusal(scope, receive, send)
        return await self.app(scope, receive, send)

    async def _check(self, scope, receive) -> tuple[Response | None, object]:
        """None when the request may go on (with the user in scope["state"]), else the refusal to send."""
        method, path = scope["method"], scope["path"]
        bearer = _bearer(scope)
        unsafe = method not in SAFE_METHODS
        if unsafe and bearer is None and cross_site(scope):
            return _refuse(scope, 403, "refused: this request comes from a page of another site"), receive
        if path.startswith("/static/") or path == "/healthz":  # no session look-up for assets and probes
            return None, receive
        if not self.settings.login_required:
            if _foreign_host(scope):
                return _refuse(scope, 403, "refused: open Loupe at http://127.0.0.1 or http://localhost"), receive
            return None, receive

        cookie = _cookie(scope, COOKIE)
        identity = await run_in_threadpool(self._identify, bearer, cookie) if bearer is not None or cookie else None
        scope["state"].update(user=identity, csrf=identity.csrf if identity else "")
        if bearer is not None and identity is None:
            return JSONResponse({"detail": "unknown or revoked API token"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"}), receive
        if path in OPEN_PATHS:
            return None, receive
        if identity is None:
            return _not_logged_in(scope, method), receive
        if not unsafe:
            return None, receive
        if identity.via == "session":
            ok, receive = await _csrf_ok(scope, receive, identity.csrf)
            if not ok:
                return _refuse(scope, 403, "missing or wrong CSRF token: reload the page and try again"), receive
        need = required_role(path)
        if not role_at_least(identity.role, need):
            return _refuse(scope, 403, f"'{identity.name}' is a {identity.role}; this needs the {need} role"), receive
        return None, receive


async def _csrf_ok(scope, receive, expected: str):
    """Check the header, or the csrf_token field of a urlencoded form; returns (ok, receive to pass on).

    Multipart bodies (uploads, up to gigabytes) are not read here: they must send the header.
    """
    given = _header(scope, CSRF_HEADER)
    content_type = (_header(scope, "content-type") or "").split(";")[0].strip().lower()
    if given is None and content_type == "application/x-www-form-urlencoded":
        body, more = b"", True
        while more and len(body) <= MAX_FORM_BYTES:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if not more:
            given = (parse_qs(body.decode("latin-1")).get(CSRF_FIELD) or [None])[0]
        receive = _replay(body, more, receive)
    ok = bool(given) and bool(expected) and hmac.compare_digest(given.encode(), expected.encode())
    return ok, receive


def _replay(body: bytes, more: bool, receive):
    """The body read for the CSRF check, then the rest from the client."""
    pending = True

    async def replayed():
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replayed


def install(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(Auth, loupe=app, settings=settings)


# For routes and templates.


def set_session_cookie(response: Response, request: Request, raw: str, max_age: int) -> None:
    response.set_cookie(COOKIE, raw, max_age=max_age, path="/", httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=request.url.scheme == "https")
