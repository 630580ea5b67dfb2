"""Headers every response carries so that a browser never reinterprets what Loupe sends.

nosniff: an original image file or a JSON body full of user text is never
guessed into HTML; DENY: no other site frames the pages (clicks on keys);
same-origin: ids in URLs do not leak to other sites as referrers.

Content-Security-Policy: scripts only from Loupe's own /static files, so that
markup that ever slipped past escaping still could not run a script (no
inline scripts, no event-handler attributes, no eval: htmx's `js:` values and
hx-on are off too). Inline styles stay allowed: the charts set widths with
style attributes, and a style cannot run code. /docs too: Swagger UI comes
from static/vendor and starts from static/js/docs.js.
"""

from __future__ import annotations

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SAFE_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]
WITH_CSP = [*SAFE_HEADERS, (b"content-security-policy", CSP.encode())]
OWN_SCRIPTS_ELSEWHERE: tuple[str, ...] = ()  # paths that may not carry the CSP: none since /docs is vendored


class SafeHeaders:
    """A plain ASGI middleware (cheaper than BaseHTTPMiddleware, see app.web.timing)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        extra = SAFE_HEADERS if scope["path"].startswith(OWN_SCRIPTS_ELSEWHERE) else WITH_CSP

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
