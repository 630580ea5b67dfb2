"""Server-Timing header on every response: how long the app took, for benchmarks and devtools.

A plain ASGI middleware: Starlette's BaseHTTPMiddleware costs about a
millisecond per request, which is a tenth of the labelling page's budget.
"""

from __future__ import annotations

import time


class ServerTiming:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()

        async def send_with_timing(message):
            if message["type"] == "http.response.start":
                dur = (time.perf_counter() - start) * 1000
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"server-timing", f"app;dur={dur:.2f}".encode())]
            await send(message)

        await self.app(scope, receive, send_with_timing)
