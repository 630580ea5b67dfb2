"""Taxonomy: classes and versions, as JSON and as the /taxonomy page."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Form, Request

from app.errors import LoupeError
from app.labelling.tags import active_tags, add_tag
from app.taxonomy.service import apply_change, list_versions, taxonomy_view
from app.web.deps import ReadSession, WriteSession
from app.web.templating import render

router = APIRouter()

CHANGE_EXAMPLE = {"op": "add", "name": "sneaker", "description": "Low sports shoe", "base_version": 0}


@router.get("/api/taxonomy", tags=["taxonomy"])
def read_taxonomy(session: ReadSession) -> dict:
    """The current version and its active classes with label counts."""
    return taxonomy_view(session)


@router.get("/api/taxonomy/versions", tags=["taxonomy"])
def read_taxonomy_versions(session: ReadSession) -> dict:
    """Every version, oldest first, with the changes it made."""
    return {"items": list_versions(session)}


@router.post("/api/taxonomy/changes", status_code=201, tags=["taxonomy"])
def create_taxonomy_change(
    session: WriteSession, change: Annotated[dict[str, Any], Body(examples=[CHANGE_EXAMPLE])]
) -> dict:
    """Apply one operation as a new version; a stale `base_version` gets 409."""
    return apply_change(session, change=change)


def _page(request: Request, session, *, error: str | None = None, status_code: int = 200):
    return render(request, "pages/taxonomy.html", {
        "taxonomy": taxonomy_view(session), "tags": active_tags(session), "versions": list_versions(session),
        "error": error,
    }, block="editor", status_code=status_code)


@router.get("/taxonomy", include_in_schema=False)
def taxonomy_page(request: Request, session: ReadSession):
    """Classes, their shortcuts and definitions, tags, and the version log."""
    return _page(request, session)


@router.post("/taxonomy/classes", include_in_schema=False)
def taxonomy_add_class(
    request: Request,
    session: WriteSession,
    name: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    shortcut: Annotated[str, Form()] = "",
    base_version: Annotated[int | None, Form()] = None,
):
    """Add a class from the page form; errors are shown in the form, not as a page."""
    try:
        apply_change(session, change={"op": "add", "name": name, "description": description,
                                      "shortcut": shortcut or None, "base_version": base_version})
    except LoupeError as exc:
        session.rollback()
        return _page(request, session, error=exc.detail, status_code=200)
    return _page(request, session)


@router.post("/taxonomy/tags", include_in_schema=False)
def taxonomy_add_tag(
    request: Request, session: WriteSession, name: Annotated[str, Form()] = "", key: Annotated[str, Form()] = ""
):
    """Add a difficulty tag from the page form."""
    try:
        add_tag(session, name=name, key=key or None)
    except LoupeError as exc:
        session.rollback()
        return _page(request, session, error=exc.detail)
    return _page(request, session)
