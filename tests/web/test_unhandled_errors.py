"""An unexpected error in a route: one 500 answer with the app's headers, and one entry in the log.

Starlette's Exception handler answers and then raises the exception again to
the server, which logged it a second time ("Exception in ASGI application"):
every 500 of the job page's poll showed up twice. An exception that leaves the
app is what the server logs; TestClient raises it instead, so here it must not.
"""

from __future__ import annotations

import logging

from fastapi.testclient import TestClient

from app.main import create_app


def test_a_route_error_is_answered_and_logged_once(settings, caplog):
    app = create_app(settings)

    @app.get("/api/boom")
    def boom():
        raise RuntimeError("the route broke")

    @app.get("/boom-page")
    def boom_page():
        raise RuntimeError("the page broke")

    with TestClient(app) as client, caplog.at_level(logging.INFO):
        r = client.get("/api/boom")
        page = client.get("/boom-page", headers={"Accept": "text/html"})
    assert r.status_code == 500 and r.json() == {"detail": "internal error: the server log has the details"}
    assert page.status_code == 500 and "server log" in page.text and "Traceback" not in page.text
    assert "content-security-policy" in r.headers and "server-timing" in r.headers   # through the middlewares
    errors = [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert [rec.getMessage() for rec in errors] == ["unhandled error on GET /api/boom",
                                                     "unhandled error on GET /boom-page"]
    assert all("the route broke" in str(rec.exc_info[1]) or "the page broke" in str(rec.exc_info[1])
               for rec in errors)
