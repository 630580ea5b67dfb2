"""create_app(): routers, static files, error handlers. No queries here."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.config import Settings
from app.db.engine import Database
from app.db.migrate import upgrade_head
from app.errors import LoupeError
from app.labelling.leases import Leases
from app.snapshots import looks
from app.training.reaper import start_reaper
from app.web import auth
from app.web.errors import error_response
from app.web.forms import Answered
from app.web.headers import SafeHeaders
from app.web.identity import csrf_token
from app.web.openapi import document_errors
from app.web.routes import account, flags, images, jobs, labels, maps, pages, quality, search, snapshots, taxonomy
from app.web.templating import env
from app.web.timing import ServerTiming
from app.web.unhandled import Unhandled

log = logging.getLogger("loupe")
STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
SWAGGER_UI = "swagger-ui-5.35.0"  # static/vendor/<this>: swagger-ui-dist's bundle and CSS, pinned


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "form"))
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


async def _on_unexpected(request: Request, exc: Exception):
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(request, 500, "internal error: the server log has the details")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    settings.ensure_dirs()
    looks.register(settings)  # where near-duplicate checks read thumbnails for this database's images
    db = Database(settings.database_url, background_checkpoint=True)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        upgrade_head(settings.database_url)
        db.start_checkpoints()
        stop_reaper = start_reaper(db, stale_after_s=settings.stale_after_s)
        yield
        stop_reaper()
        db.dispose()

    # FastAPI's own /docs and /redoc load their files from a CDN (blank offline) and start them with an inline
    # script (no CSP); Loupe serves Swagger UI from static/vendor instead, and no ReDoc.
    app = FastAPI(title="Loupe", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.db = db
    document_errors(app)
    app.state.leases = Leases()  # who is shown which queue image; lives as long as the process

    # First added, innermost: a route's unexpected error is answered (and logged) once, inside the others.
    app.add_middleware(Unhandled, handler=_on_unexpected)
    auth.install(app, settings)
    app.add_middleware(ServerTiming)
    app.add_middleware(SafeHeaders)

    @app.exception_handler(Answered)
    async def on_refused_form(request: Request, exc: Answered):
        return exc.response

    @app.exception_handler(LoupeError)
    async def on_loupe_error(request: Request, exc: LoupeError):
        return error_response(request, exc.status_code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError):
        return error_response(request, 422, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException):
        return error_response(request, exc.status_code, str(exc.detail))

    # Only what a middleware itself raises still gets here (Starlette then also re-raises it to the server).
    app.exception_handler(Exception)(_on_unexpected)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        page = env.get_template("docs.html").render(swagger=SWAGGER_UI, openapi_url=app.openapi_url,
                                                    csrf=csrf_token(request))
        return HTMLResponse(page)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for module in (account, images, search, labels, taxonomy, flags, quality, snapshots, jobs, maps, pages):
        app.include_router(module.router)
    return app
