"""The one way the web edge answers with an error: JSON for the API and for clients that do not ask for
HTML, the error page for browsers. The exception handlers (app.main) and the auth middleware both use it."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse

from app.web.templating import env


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", "")


def error_response(request: Request, status: int, detail: str,
                   headers: dict[str, str] | None = None) -> JSONResponse | HTMLResponse:
    if wants_json(request):
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)
    html = env.get_template("pages/error.html").render(request=request, status=status, detail=detail)
    return HTMLResponse(html, status_code=status, headers=headers)
