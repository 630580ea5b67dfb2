"""Headers every response carries so that a browser never reinterprets what Loupe sends.

nosniff: an original image file or a JSON body full of user text is never
guessed into HTML; DENY: no other site frames the pages (clicks on keys);
same-origin: ids in URLs do not leak to other sites as referrers.
"""

from __future__ import annotations

SAFE_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


class SafeHeaders:
    """A plain ASGI middleware (cheaper than BaseHTTPMiddleware, see app.web.timing)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SAFE_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)
