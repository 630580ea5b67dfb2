"""Schemathesis over the app's own OpenAPI schema, in process, on a seeded real SQLite file: never a 5xx.

Every operation gets schema-valid and schema-invalid requests (Hypothesis, derandomized so a CI
failure replays locally); integer path ids hit the seeded rows about half the time. Afterwards the
database must still be consistent: a rejected request leaves no half-written rows behind.
"""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance
from sqlalchemy import text

from app.config import Settings
from app.main import create_app
from tests import databases
from tests.factories import add_class, label, labelled_snapshot, upload_fmnist
from tests.quality.helpers import confident_probs, finish_job, snapshot_labels

EXAMPLES = 20  # per operation and mode: about a minute for the whole schema on two busy cores
SEEDED_IDS = st.integers(min_value=1, max_value=12)  # a fresh database hands these out first
CHECKS = [not_a_server_error, content_type_conformance, response_schema_conformance]


def _seed(client: TestClient, db) -> None:
    """Classes, real images, labels with tags and notes, a snapshot, a finished job and its flags."""
    snap = labelled_snapshot(client, 12, classes=2, folds=2, name="fuzz")
    classes, labels = snapshot_labels(client, snap)
    first = next(iter(labels))
    finish_job(client, db, snap, confident_probs(labels, len(classes), wrong={first: 1 - labels[first]}))
    ids = upload_fmnist(client, 3, start=100, source="web")
    add_class(client, "bag", description="Handles and a strap")
    label(client, ids[0], "bag", confidence=0.5, tags=["dark"], note="strap hidden", annotator="ana", ms=900)
    r = client.post("/api/taxonomy/changes", json={"op": "split", "class": "bag", "into": ["tote", "clutch"]})
    assert r.status_code == 201, r.text  # the split sends ids[0] to re-review: a rereview flag


@pytest.fixture(scope="module")
def seeded_app(tmp_path_factory, database_template):
    data = tmp_path_factory.mktemp("fuzz") / "data"
    url = database_template.fresh(data)
    s = Settings(data=data, database_url=url)
    s.ensure_dirs()
    app = create_app(s)
    with TestClient(app) as client:
        _seed(client, app.state.db)
        yield app
    databases.drop(url)


def _real_ids(path_parameters: dict) -> st.SearchStrategy[dict]:
    ints = [k for k, v in path_parameters.items() if isinstance(v, int) and not isinstance(v, bool)]
    real = st.fixed_dictionaries({k: SEEDED_IDS for k in ints}).map(lambda d: {**path_parameters, **d})
    return st.one_of(st.just(path_parameters), real) if ints else st.just(path_parameters)


def _fuzz(operation, client) -> None:
    modes = [operation.as_strategy(generation_mode=m) for m in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]

    @given(case=st.one_of(modes), data=st.data())
    @settings(max_examples=2 * EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case, data):
        if case.path_parameters:
            case.path_parameters = data.draw(_real_ids(case.path_parameters))
        response = case.call(session=client)
        case.validate_response(response, checks=CHECKS)
        if response.status_code >= 400:
            assert isinstance(response.json().get("detail"), str), response.text

    run()


def test_no_operation_answers_5xx(seeded_app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", seeded_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30
    failures = []
    with asgi.get_client(seeded_app) as client:
        for operation in operations:
            try:
                _fuzz(operation, client)
            except (Exception, BaseExceptionGroup) as exc:  # every operation runs; all failures reported together
                failures.append(f"{operation.label}: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)
    if not databases.ON_POSTGRES:  # PostgreSQL enforces its constraints on every statement anyway
        with seeded_app.state.db.reading() as session:
            assert session.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            assert session.execute(text("PRAGMA foreign_key_check")).all() == []
