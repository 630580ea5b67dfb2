"""Taxonomy: classes and versions, as JSON and as the /taxonomy page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Form, Request

from app.errors import Conflict, LoupeError
from app.labelling.tags import active_tags, add_tag
from app.taxonomy.queries import retired_keys
from app.taxonomy.service import apply_change, list_versions, taxonomy_view
from app.web.deps import ReadSession, WriteSession
from app.web.forms import form_number, refusal_shows
from app.web.identity import signed
from app.web.openapi import ERROR
from app.web.schemas.taxonomy import TaxonomyVersions, TaxonomyView
from app.web.taxonomy_bodies import EXAMPLES, TaxonomyChangeBody, as_change
from app.web.templating import render

router = APIRouter()


@router.get("/api/taxonomy", tags=["taxonomy"], response_model=TaxonomyView)
def read_taxonomy(session: ReadSession) -> dict:
    """The current version and its active classes with label counts."""
    return taxonomy_view(session)


@router.get("/api/taxonomy/versions", tags=["taxonomy"], response_model=TaxonomyVersions,
            response_model_exclude_unset=True)
def read_taxonomy_versions(session: ReadSession) -> dict:
    """Every version, oldest first, with the changes it made."""
    return {"items": list_versions(session)}


def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": ERROR}}}


@router.post("/api/taxonomy/changes", status_code=201, tags=["taxonomy"], response_model=TaxonomyView, responses={
    404: _error("A class, image or version named in the change does not exist."),
    409: _error("`base_version` is not the current version (someone changed the taxonomy first), or the version "
                "to undo can no longer be undone."),
})
def create_taxonomy_change(
    request: Request, session: WriteSession, change: Annotated[TaxonomyChangeBody, Body(openapi_examples=EXAMPLES)]
) -> dict:
    """Apply one operation (chosen by `op`) as a new version; a stale `base_version` gets 409.

    Every version lists its changes in `GET /api/taxonomy/versions`, each with
    a readable `summary` and, under `keys`, every shortcut key it gave, moved
    or took away: a class keeps its key for life unless someone changes it.
    """
    return apply_change(session, change=as_change(change), author=signed(request, ""))


def _page(request: Request, session, *, error: str | None = None, notice: str | None = None,
          kept: dict | None = None):
    """The editor; after a refused change, `kept` refills the form it came from so no typing is lost."""
    versions = list_versions(session)
    undone = {c["undoes"] for v in versions for c in v["changes"] if c["op"] == "undo"}
    return render(request, "pages/taxonomy.html", {
        "taxonomy": taxonomy_view(session), "tags": active_tags(session), "versions": versions,
        "undone": undone, "error": error, "notice": notice, "kept": kept or {}, "retired_keys": retired_keys(session),
    }, block="editor")


@router.get("/taxonomy", include_in_schema=False)
def taxonomy_page(request: Request, session: ReadSession):
    """Classes, their shortcuts and definitions, tags, and the version log."""
    return _page(request, session)


Field = Annotated[str, Form()]


@router.post("/taxonomy/changes", include_in_schema=False)
def taxonomy_form_change(
    request: Request,
    session: WriteSession,
    op: Field = "",
    class_: Annotated[str, Form(alias="class")] = "",
    name: Field = "",
    description: Field = "",
    shortcut: Field = "",
    into: Field = "",
    kind: Field = "",
    message: Field = "",
    author: Field = "",
    classes: Annotated[list[str], Form()] = [],
    base_version: Field = "",
    version: Field = "",
    image: Field = "",
    mode: Field = "",
):
    """Any operation from the taxonomy page; errors are shown in the page, not as a separate page."""
    fields = {"op": op, "class": class_, "name": name, "description": description, "shortcut": shortcut,
              "into": into, "kind": kind, "message": message, "mode": mode}
    change = {k: v.strip() for k, v in fields.items() if v.strip()}
    if op == "describe":
        change["description"] = description.strip()  # an empty definition is a valid edit
    if classes:
        change["classes"] = [c for c in classes if c]
    if op == "split":
        change["into"] = [n.strip() for n in into.split(",") if n.strip()]
    def refused(exc: LoupeError):  # the form again, filled in as sent (the numbers read so far included)
        kept = {**change, "into": into.strip(), "description": description, "classes": change.get("classes", [])}
        return _page(request, session, error=_refused(exc, op), kept=kept)

    with refusal_shows(session, refused):
        for key, value in (("base_version", base_version), ("version", version), ("image", image)):
            if (number := form_number(value, key)) is not None:
                change[key] = number
        apply_change(session, change=change, author=signed(request, author.strip()))
    return _page(request, session, notice=_notice(change, list_versions(session)[-1]))


def _refused(exc: LoupeError, op: str) -> str:
    if isinstance(exc, Conflict) and op != "undo":
        return (f"Not saved: someone else changed the taxonomy first ({exc.detail}). "
                "Your change is still in its form below: check the classes above, then submit it again.")
    return exc.detail


def _notice(change: dict, version: dict) -> str:
    """What just happened, key changes included, where the person is looking."""
    done = "; ".join(c["summary"] for c in version["changes"])
    head = "Undone" if change.get("op") == "undo" else "Saved as a new version"
    return f"{head} (v{version['version']}): {done}."


@router.post("/taxonomy/tags", include_in_schema=False)
def taxonomy_add_tag(
    request: Request, session: WriteSession, name: Annotated[str, Form()] = "", key: Annotated[str, Form()] = ""
):
    """Add a difficulty tag from the page form."""
    with refusal_shows(session, lambda exc: _page(request, session, error=exc.detail)):
        add_tag(session, name=name, key=key or None)
    return _page(request, session)
