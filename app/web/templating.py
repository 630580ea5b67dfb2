"""One render helper: the whole page, or one named block for an htmx request."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, Template, nodes, select_autoescape

from app.timeutil import iso
from app.web.identity import csrf_token, current_user

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


@cache
def _imports(name: str) -> tuple[nodes.Node, ...]:
    """The `{% import %}` / `{% from ... import %}` statements at the top level of template `name`.

    Jinja runs these in the template's root render function, which a lone block never calls, so a block
    that uses an imported macro would find it undefined (a 500 on every htmx poll of the job page).
    """
    source = env.loader.get_source(env, name)[0]
    return tuple(n for n in env.parse(source).body if isinstance(n, nodes.Import | nodes.FromImport))


def _module(name: str, ctx: dict[str, Any], with_context: bool):
    tpl = env.get_template(name)
    return tpl.make_module(ctx) if with_context else tpl.module


def _block_html(tpl: Template, block: str, ctx: dict[str, Any]) -> str:
    """One block of `tpl`, seeing the names the template imports at its top level, as a whole render would."""
    names: dict[str, Any] = {}
    for node in _imports(tpl.name):
        module = _module(node.template.value, ctx, node.with_context)
        if isinstance(node, nodes.Import):
            names[node.target] = module
        else:
            for entry in node.names:
                name, alias = entry if isinstance(entry, tuple) else (entry, entry)
                names[alias] = getattr(module, name)
    return "".join(tpl.blocks[block](tpl.new_context({**ctx, **names})))


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
        html = _block_html(tpl, block, ctx)
    else:
        html = tpl.render(ctx)
    if block:  # one URL, two bodies: a cache must not hand the fragment to a page load, or the page to htmx
        headers = {**(headers or {}), "Vary": "HX-Request"}
    return HTMLResponse(html, status_code=status_code, headers=headers)


def render_block(request: Request, template: str, block: str, context: dict[str, Any], **kw) -> HTMLResponse:
    """Render just one block, whether or not the request came from htmx."""
    tpl = env.get_template(template)
    return HTMLResponse(_block_html(tpl, block, {"request": request, **context}), **kw)
