"""The OpenAPI schema documents each taxonomy operation, and its examples are requests the server accepts."""

from __future__ import annotations

from app.taxonomy.service import OPERATIONS
from tests.factories import add_class, upload_fmnist


def _body(client) -> tuple[dict, dict]:
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/api/taxonomy/changes"]["post"]["requestBody"]["content"]["application/json"]
    return schema, body


def test_each_operation_has_a_documented_model_with_examples(client):
    schema, body = _body(client)
    mapping = body["schema"]["discriminator"]["mapping"]
    assert body["schema"]["discriminator"]["propertyName"] == "op"
    assert set(mapping) == set(OPERATIONS)
    components = schema["components"]["schemas"]
    for op, ref in mapping.items():
        model = components[ref.rsplit("/", 1)[1]]
        assert model["properties"]["op"]["const"] == op
        assert model["description"] and model["examples"], op
        assert all(example["op"] == op for example in model["examples"])
        assert "base_version" in model["properties"] and "op" in model["required"]
    assert set(body["examples"]) == set(OPERATIONS)
    merge = components[mapping["merge"].rsplit("/", 1)[1]]
    assert set(merge["required"]) == {"op", "classes", "into"}
    assert components[mapping["undo"].rsplit("/", 1)[1]]["properties"]["version"]["type"] == "integer"


def test_the_documented_examples_are_accepted_in_order(client):
    """The examples tell one story (a shoe merge, a bag split, an undo); each one is a request that works."""
    for name in ("Sandal", "Bag"):
        add_class(client, name)
    image = upload_fmnist(client, 1)[0]
    _, body = _body(client)
    ex = {op: {k: v for k, v in e["value"].items() if k != "base_version"} for op, e in body["examples"].items()}
    merge_version = 5
    story = [ex["add"], ex["describe"], ex["merge"], ex["set-shortcut"], ex["split"],
             {**ex["pin"], "class": "Backpack", "image": image}, {**ex["unpin"], "class": "Backpack", "image": image},
             {**ex["retire"], "class": "Handbag"}, {**ex["undo"], "version": merge_version}, ex["rename"]]
    for change in story:
        r = client.post("/api/taxonomy/changes", json=change)
        assert r.status_code == 201, (change, r.text)
    assert client.get("/api/taxonomy/versions").json()["items"][merge_version - 1]["message"] == "merge Sandal, Sneaker → Shoe"
    assert [c["name"] for c in client.get("/api/taxonomy").json()["classes"]] == ["Sandal", "Trainer", "Backpack"]


def test_extra_keys_still_reach_the_log_as_sent(client):
    r = client.post("/api/taxonomy/changes", json={"op": "add", "name": "Bag", "why": "requested by ana"})
    assert r.status_code == 201
    change = client.get("/api/taxonomy/versions").json()["items"][-1]["changes"][0]
    assert change["request"] == {"op": "add", "name": "Bag", "why": "requested by ana"}

