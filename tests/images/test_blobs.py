"""The image store interface, the same contract on the data dir and on a real S3-compatible server."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.config import Settings
from app.errors import InvalidInput, Unavailable
from app.images import blobs
from app.images.s3 import S3Blobs
from tests.images.conftest import objects

KEY = "store/ab/cd/abcd1234.png"


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return blobs.LocalBlobs(tmp_path / "data")
    s3, bucket = request.getfixturevalue("s3"), request.getfixturevalue("bucket")
    store = S3Blobs(f"s3://{bucket}/pre/fix", endpoint_url=request.getfixturevalue("s3_endpoint"))
    store.inspect = lambda: objects(s3, bucket)
    return store


def _temp(tmp_path, data: bytes):
    path = tmp_path / f"t-{len(list(tmp_path.iterdir()))}"
    path.write_bytes(data)
    return path


def test_put_then_read_it_back_every_way(store, tmp_path):
    temp = _temp(tmp_path, b"\x89PNG first")
    assert store.put(temp, KEY) is True and not temp.exists()
    assert store.exists(KEY) and store.size(KEY) == 10
    with store.open(KEY) as f:
        assert f.read() == b"\x89PNG first"
    size, chunks = store.stream(KEY)
    assert size == 10 and b"".join(chunks) == b"\x89PNG first"
    store.fetch(KEY, tmp_path / "copy" / "x.png")
    assert (tmp_path / "copy" / "x.png").read_bytes() == b"\x89PNG first"
    assert [p.name for p in (tmp_path / "copy").iterdir()] == ["x.png"]  # no temporary left beside it
    again = _temp(tmp_path, b"\x89PNG first")
    assert store.put(again, KEY) is False and not again.exists()  # content-addressed: already there
    if isinstance(store, S3Blobs):
        assert list(store.inspect()) == [f"pre/fix/{KEY}"]  # under the URL's prefix, nothing else
        assert store.local_path(KEY) is None
    else:
        assert store.local_path(KEY).read_bytes() == b"\x89PNG first"


def test_missing_keys_are_file_not_found_and_delete_is_idempotent(store, tmp_path):
    assert not store.exists(KEY)
    for call in (lambda: store.open(KEY), lambda: store.stream(KEY), lambda: store.size(KEY),
                 lambda: store.fetch(KEY, tmp_path / "out.png")):
        with pytest.raises(FileNotFoundError):
            call()
    assert not (tmp_path / "out.png").exists()
    store.put(_temp(tmp_path, b"x"), KEY)
    store.delete(KEY)
    store.delete(KEY)
    assert not store.exists(KEY)


@pytest.mark.parametrize("key", ["../loupe.db", "/etc/passwd", "store/../../x", "store\\x", ""])
def test_a_key_that_leaves_the_store_is_refused(store, key):
    with pytest.raises(InvalidInput, match="not a key of the image store"):
        store.open(key)


def test_a_missing_bucket_is_unavailable_with_the_store_named(s3, s3_endpoint, tmp_path):
    store = S3Blobs("s3://loupe-no-such-bucket/x", endpoint_url=s3_endpoint)
    with pytest.raises(Unavailable, match="s3://loupe-no-such-bucket/x.*does not exist"):
        store.check()
    with pytest.raises(Unavailable, match="s3://loupe-no-such-bucket/x"):
        store.put(_temp(tmp_path, b"x"), KEY)


def test_local_copies_copy_once_and_report_missing_keys(s3, bucket, s3_endpoint, tmp_path):
    store = S3Blobs(f"s3://{bucket}", endpoint_url=s3_endpoint)
    keys = [f"store/aa/bb/{i}.png" for i in range(3)]
    for i, key in enumerate(keys[:2]):
        store.put(_temp(tmp_path, bytes([i]) * 5), key)
    done = []
    paths, missing = blobs.local_copies(store, keys, tmp_path / "cache", progress=done.append)
    assert missing == [keys[2]] and done == [3]
    assert [open(p, "rb").read() for p in paths[:2]] == [b"\x00" * 5, b"\x01" * 5]
    store.delete(keys[0])  # a copy, once made, is used again: its key's bytes never change
    again, missing = blobs.local_copies(store, keys[:1], tmp_path / "cache")
    assert again == paths[:1] and missing == []


def test_local_store_paths_are_the_files_themselves(tmp_path):
    store = blobs.LocalBlobs(tmp_path)
    paths, missing = blobs.local_copies(store, [KEY], tmp_path / "cache")
    assert paths == [str(tmp_path / KEY)] and missing == [] and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("url", ["/mnt/images", "file:///mnt/images", "s3://", "s3:///prefix", "gs://bucket"])
def test_store_url_must_be_s3_or_unset(tmp_path, url):
    with pytest.raises(ValidationError, match="LOUPE_STORE_URL must be s3://BUCKET"):
        Settings(data=tmp_path, store_url=url)


def test_store_url_picks_the_backend(tmp_path, s3, s3_endpoint):
    assert isinstance(blobs.for_settings(Settings(data=tmp_path)), blobs.LocalBlobs)
    remote = blobs.for_settings(Settings(data=tmp_path, store_url="s3://b-u-c/p/", s3_endpoint_url=s3_endpoint))
    assert isinstance(remote, S3Blobs) and (remote.bucket, remote.prefix) == ("b-u-c", "p/")
    settings = Settings(data=tmp_path / "d", store_url="s3://b-u-c")
    settings.ensure_dirs()
    assert sorted(p.name for p in settings.data_dir.iterdir()) == ["tmp"]  # no empty local store to mislead
