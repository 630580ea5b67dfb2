"""A route's unexpected exception becomes the app's 500 answer, logged once.

Starlette hands an `Exception` handler to its outermost middleware, which
answers with it and then raises the exception again so that the server logs
it too: every error reached the log twice (Loupe's line with the request,
then uvicorn's "Exception in ASGI application"). This middleware sits inside
the others, answers and does not raise again; the answer still passes through
the security headers and timing on its way out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response


class Unhandled:
    def __init__(self, app, handler: Callable[[Request, Exception], Awaitable[Response]]):
        self.app, self.handler = app, handler

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:
            if started:  # half an answer is out: too late for another; the server logs it and drops the connection
                raise
            response = await self.handler(Request(scope, receive), exc)
            await response(scope, receive, send)
