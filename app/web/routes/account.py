"""Logging in and out (only needed when logins are required: beyond loopback, or LOUPE_LOGIN=required)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from app.accounts.ratelimit import Limits
from app.accounts.sessions import LoginFailed, LoginLocked, end_session, log_in
from app.web.auth import COOKIE, clear_session_cookie, set_session_cookie
from app.web.deps import DatabaseDep, SettingsDep
from app.web.identity import current_user
from app.web.templating import render

router = APIRouter()


def _safe_next(target: str) -> str:
    """Only a path on this site: an open redirect would make the login page a phishing tool."""
    if not target.startswith("/") or target.startswith(("//", "/\\")) or any(c < " " for c in target):
        return "/"
    return target


def _form(request: Request, *, next_: str, name: str = "", error: str | None = None, status: int = 200,
          headers: dict[str, str] | None = None):
    return render(request, "pages/login.html", {"next": next_, "name": name, "error": error},
                  status_code=status, headers=headers)


@router.get("/login", include_in_schema=False)
def login_page(request: Request, settings: SettingsDep, next: str = "/"):
    """The login form; straight on when logged in already, or when nobody needs to log in."""
    if not settings.login_required or current_user(request):
        return RedirectResponse(_safe_next(next), status_code=303)
    return _form(request, next_=_safe_next(next))


@router.post("/login", include_in_schema=False)
def login(
    request: Request, db: DatabaseDep, settings: SettingsDep,
    name: Annotated[str, Form()] = "", password: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/",
):
    """Check the name and password (rate-limited), start a session, go where the user was going."""
    target, name = _safe_next(next), name.strip()
    if not settings.login_required:
        return RedirectResponse(target, status_code=303)
    if not name or not password:
        return _form(request, next_=target, name=name, error="give your user name and password", status=422)
    limits = Limits(settings.login_max_failures, settings.login_max_failures_per_ip, settings.login_window_s)
    lifetime = int(settings.session_days * 86400)
    try:
        raw, _ = log_in(db, name=name, password=password, ip=request.client.host if request.client else "?",
                        limits=limits, lifetime_s=lifetime)
    except LoginLocked as exc:
        return _form(request, next_=target, name=name, error=exc.detail, status=429,
                     headers={"Retry-After": str(exc.retry_after)})
    except LoginFailed as exc:
        return _form(request, next_=target, name=name, error=exc.detail, status=401)
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, request, raw, max_age=lifetime)
    return response


@router.post("/logout", include_in_schema=False)
def logout(request: Request, db: DatabaseDep):
    """End this browser's session (the row goes, so a copied cookie stops working too)."""
    raw = request.cookies.get(COOKIE)
    if raw:
        with db.writing() as session:
            end_session(session, raw)
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(response, request)
    return response
