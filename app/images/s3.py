"""The image store in an S3-compatible bucket (AWS S3, MinIO, Ceph, ...), through boto3.

Credentials and region come from boto3's usual sources (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, ~/.aws, an instance role); a server
other than AWS is named by LOUPE_S3_ENDPOINT_URL. An object appears whole or
not at all, so no temporary key is needed. Failures other than a missing key
become `Unavailable` with the store named, never a bare botocore traceback.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from app.errors import InvalidInput, Unavailable
from app.images.store import CHUNK, atomic_copy, check_key

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:  # pragma: no cover - depends on what is installed
    boto3 = None

MISSING = {"404", "NoSuchKey", "NotFound"}


class S3Blobs:
    def __init__(self, url: str, *, endpoint_url: str | None = None):
        if boto3 is None:
            raise InvalidInput(f"LOUPE_STORE_URL is {url} but boto3 is not installed: pip install 'loupe[s3]'")
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        self.url, self.bucket = url, bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        config = Config(max_pool_connections=32, retries={"mode": "standard", "max_attempts": 5})
        # A client (unlike a boto3 session) may be shared by threads: the web server's and the worker's pools.
        self.client = boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    @contextmanager
    def _errors(self, key: str):
        try:
            yield
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in MISSING:
                raise FileNotFoundError(f"{self.url}/{key} does not exist") from None
            raise Unavailable(f"the image store {self.url} refused {key}: {exc}") from None
        except BotoCoreError as exc:
            raise Unavailable(f"the image store {self.url} cannot be reached: {exc}") from None

    def check(self) -> None:
        """Unavailable unless the bucket is there and these credentials may use it."""
        try:
            with self._errors(""):
                self.client.head_bucket(Bucket=self.bucket)
        except FileNotFoundError:
            raise Unavailable(f"the image store {self.url} cannot be used: "
                              f"bucket {self.bucket} does not exist") from None

    def put(self, temp: Path, key: str) -> bool:
        if self.exists(key):  # content-addressed: the bytes there are these bytes
            temp.unlink(missing_ok=True)
            return False
        content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        # One PUT (up to 5 GB, far above max_file_bytes): errors stay botocore's, mapped in _errors.
        with self._errors(key), open(temp, "rb") as body:
            self.client.put_object(Bucket=self.bucket, Key=self._name(key), Body=body, ContentType=content_type)
        temp.unlink(missing_ok=True)
        return True

    def _get(self, key: str) -> dict:
        with self._errors(key):
            return self.client.get_object(Bucket=self.bucket, Key=self._name(key))

    def open(self, key: str) -> BinaryIO:
        return self._get(key)["Body"]

    def stream(self, key: str) -> tuple[int, Iterator[bytes]]:
        response = self._get(key)
        body = response["Body"]

        def chunks() -> Iterator[bytes]:
            try:
                with self._errors(key):
                    yield from body.iter_chunks(CHUNK)
            finally:
                body.close()

        return response["ContentLength"], chunks()

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except FileNotFoundError:
            return False
        return True

    def size(self, key: str) -> int:
        with self._errors(key):
            return self.client.head_object(Bucket=self.bucket, Key=self._name(key))["ContentLength"]

    def delete(self, key: str) -> None:
        with self._errors(key):
            self.client.delete_object(Bucket=self.bucket, Key=self._name(key))

    def local_path(self, key: str) -> Path | None:
        return None

    def fetch(self, key: str, dest: Path) -> None:
        atomic_copy(self.open(key), dest)
