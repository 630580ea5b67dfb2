"""The OpenAPI document describes errors as they are sent: `{"detail": "a sentence"}`.

FastAPI documents its own validation error list; app.main answers every error,
422 included, with one readable string, so the schema says that instead.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response

ERROR = {
    "title": "Error",
    "type": "object",
    "properties": {"detail": {"type": "string", "title": "Detail"}},
    "required": ["detail"],
}


def document_errors(app: FastAPI) -> None:
    """Make app.openapi() describe the error body the handlers really send."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schemas = schema.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in schemas:
                schemas["HTTPValidationError"] = ERROR
            schemas.pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


def file_response(*media_types: str, description: str = "The file") -> dict[str, Any]:
    """Route options for a route that sends a file, so the schema names its real content types."""
    body = {"schema": {"type": "string", "format": "binary"}}
    return {"response_class": Response, "responses": {200: {"description": description,
                                                            "content": {m: body for m in media_types}}}}
