"""Token check, on only when LOUPE_TOKEN is set (required to listen beyond loopback).

A browser opens http://host:8000/?token=SECRET once; the token then lives in an
HttpOnly cookie. Scripts send `Authorization: Bearer SECRET`.
"""

from __future__ import annotations

import hmac

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse

from app.config import Settings

COOKIE = "loupe_token"
OPEN_PATHS = ("/healthz", "/static/")


def _presented(request: Request) -> str:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.query_params.get("token") or request.cookies.get(COOKIE, "")


def install(app: FastAPI, settings: Settings) -> None:
    if not settings.token:
        return
    secret = settings.token.encode()

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        if request.url.path.startswith(OPEN_PATHS):
            return await call_next(request)
        if not hmac.compare_digest(_presented(request).encode(), secret):
            return JSONResponse({"detail": "a valid token is required (LOUPE_TOKEN)"}, status_code=401)
        if "token" in request.query_params:
            # Move the token out of the URL (history, referrers) into a cookie.
            response = RedirectResponse(request.url.remove_query_params("token"), status_code=303)
            response.set_cookie(COOKIE, settings.token, httponly=True, samesite="strict")
            return response
        return await call_next(request)
