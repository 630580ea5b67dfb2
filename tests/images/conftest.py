"""An S3-backed store on a real S3-compatible server (tests.s3), one fresh bucket per test."""

from __future__ import annotations

import uuid

import pytest

from app.config import Settings
from tests.s3 import CREDENTIALS, moto_server


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3(s3_endpoint, monkeypatch):
    """A boto3 client of the test server, with the credentials the app will find in the environment."""
    boto3 = pytest.importorskip("boto3", reason="the S3 store needs boto3: pip install -e '.[test]'")
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return boto3.session.Session().client("s3", endpoint_url=s3_endpoint)


@pytest.fixture
def bucket(s3) -> str:
    name = f"loupe-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_settings(settings, s3_endpoint, bucket, monkeypatch) -> Settings:
    """`settings` with LOUPE_STORE_URL=s3://<bucket>/team-a; also in the environment, for worker processes."""
    monkeypatch.setenv("LOUPE_STORE_URL", f"s3://{bucket}/team-a/")
    monkeypatch.setenv("LOUPE_S3_ENDPOINT_URL", s3_endpoint)
    return Settings(data=settings.data, database_url=settings.database_url)


def objects(s3, bucket: str) -> dict[str, tuple[str, object]]:
    """Every object in the bucket: key -> (etag, last modified)."""
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            found[o["Key"]] = (o["ETag"], o["LastModified"])
    return found
