"""Every JSON route declares what it answers (issue 17): the OpenAPI document names a model for each
success response, so a client can be generated from it, and statuses and kinds are listed values."""

from __future__ import annotations

from pathlib import Path

from app.config import Settings
from app.main import create_app


def _schema(tmp_path: Path) -> dict:
    return create_app(Settings(data=tmp_path)).openapi()


def _json_answers(schema: dict):
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            for code, response in op["responses"].items():
                body = response.get("content", {}).get("application/json")
                if code.startswith("2") and body is not None:
                    yield f"{method.upper()} {path} {code}", body.get("schema") or {}


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def test_every_json_answer_names_a_model(tmp_path):
    schema = _schema(tmp_path)
    answers = dict(_json_answers(schema))
    assert len(answers) >= 45  # the routes of today: a filter that matched nothing would pass vacuously
    untyped = [name for name, body in answers.items()
               if not _resolve(schema, body).get("properties") and "anyOf" not in body and "oneOf" not in body]
    assert not untyped, f"these JSON routes answer an undocumented object: {untyped}"


def test_models_document_their_fields(tmp_path):
    """A model with no declared fields would pass the test above in name only."""
    schema = _schema(tmp_path)
    empty = [name for name, model in schema["components"]["schemas"].items()
             if model.get("type") == "object" and "properties" in model and not model["properties"]]
    assert not empty, f"models that declare nothing: {empty}"


def test_statuses_and_kinds_are_listed_values(tmp_path):
    schema = _schema(tmp_path)
    models = schema["components"]["schemas"]

    def enum_of(model: str, field: str) -> list[str]:
        node = models[model]["properties"][field]
        options = node.get("anyOf", [node])
        return [v for o in options for v in _resolve(schema, o).get("enum", [])]

    job = next(name for name, m in models.items() if {"status", "kind", "progress"} <= m.get("properties", {}).keys())
    assert enum_of(job, "status") == ["queued", "running", "succeeded", "failed", "cancelled"]
    assert "train" in enum_of(job, "kind") and "analyse" in enum_of(job, "kind")
    flag = next(name for name, m in models.items()
                if {"status", "kind", "resolution"} <= m.get("properties", {}).keys())
    assert enum_of(flag, "status") == ["open", "resolved", "cancelled", "pending"]
    assert "mislabel" in enum_of(flag, "kind")
