"""One render helper: the whole page, or one named block for an htmx request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from app.timeutil import iso
from app.web.auth import csrf_token, current_user

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"

env = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters["iso"] = iso
# The logged-in user (None when nobody logs in) and their session's CSRF token, for base.html and forms.
env.globals.update(current_user=current_user, csrf_token=csrf_token)


def _pct(value: float | None) -> str:
    return "" if value is None else f"{round(value * 100)}%"


env.filters["pct"] = _pct


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    block: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render `template`; for an htmx request (HX-Request header) only `block`, when given."""
    tpl = env.get_template(template)
    ctx = {"request": request, **context}
    if block and request.headers.get("HX-Request") == "true":
        html = "".join(tpl.blocks[block](tpl.new_context(ctx)))
    else:
        html = tpl.render(ctx)
    return HTMLResponse(html, status_code=status_code, headers=headers)


def render_block(request: Request, template: str, block: str, context: dict[str, Any], **kw) -> HTMLResponse:
    """Render just one block, whether or not the request came from htmx."""
    tpl = env.get_template(template)
    html = "".join(tpl.blocks[block](tpl.new_context({"request": request, **context})))
    return HTMLResponse(html, **kw)
