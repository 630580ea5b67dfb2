"""Uploads over HTTP are judged by their bytes, not their names; odd zip paths never leave the store."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from sqlalchemy import select

from app.db.models import Image
from tests.factories import files_under
from tests.images import broken

ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(56) + b"\x00" * 200
WINDOWS_EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + bytes(200)
HTML = b"<!doctype html><html><body><script>alert(1)</script></body></html>"
SVG = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
       b'<script>alert(1)</script><rect width="10" height="10"/></svg>')


def _upload(client, files: list[tuple[str, bytes]], source: str = "web") -> dict:
    r = client.post("/api/images", data={"source": source},
                    files=[("files", (name, data, "application/octet-stream")) for name, data in files])
    assert r.status_code == 200, r.text
    return r.json()


def test_format_comes_from_the_bytes_not_the_name(client):
    jpeg = broken.encoded(broken.photo(40, 30), "JPEG")
    report = _upload(client, [("photo.txt", broken.fmnist_png(0)), ("really-a-jpeg.png", jpeg),
                              ("no-extension", broken.fmnist_png(1))])
    assert not report["rejected"], report
    by_name = {i["filename"]: i["id"] for i in report["imported"]}
    for name, fmt, media in [("photo.txt", "PNG", "image/png"), ("really-a-jpeg.png", "JPEG", "image/jpeg"),
                             ("no-extension", "PNG", "image/png")]:
        image_id = by_name[name]
        assert client.get(f"/api/images/{image_id}").json()["format"] == fmt
        r = client.get(f"/api/images/{image_id}/file")
        assert r.headers["content-type"] == media  # from the detected format, never from the uploaded name
        assert r.headers["x-content-type-options"] == "nosniff"


def test_non_images_with_image_names_are_rejected_with_a_reason_and_the_rest_imports(client, settings):
    bad = {"page.png": HTML, "drawing.jpg": SVG, "tool.png": ELF, "setup.jpg": WINDOWS_EXE,
           "notes.jpeg": b"just some text\n", "empty.png": b""}
    report = _upload(client, [*bad.items(), ("good.png", broken.fmnist_png(2))])
    assert [i["filename"] for i in report["imported"]] == ["good.png"]
    reasons = {r["filename"]: r["error"] for r in report["rejected"]}
    assert set(reasons) == set(bad)
    for name in set(bad) - {"empty.png"}:
        assert "not an image Loupe can read" in reasons[name], reasons[name]
    assert reasons["empty.png"] == "empty file (0 bytes)"
    stored = files_under(settings.data)
    assert not any(data and data in p.read_bytes() for p in stored for data in (HTML, SVG, ELF))


def test_odd_paths_in_uploads_and_zips_never_write_outside_the_store(client, db, tmp_path):
    archive = broken.zip_bytes({
        "../../evil.png": broken.fmnist_png(3),
        "/tmp/evil-absolute.png": broken.fmnist_png(4),
        "..\\..\\evil-backslash.png": broken.fmnist_png(5),
        "C:/evil-drive.png": broken.fmnist_png(6),
        "ok/../../evil-inner.png": broken.fmnist_png(7),
        "evil\x00.png": broken.fmnist_png(8),
        "fine/inside.png": broken.fmnist_png(9),
    })
    before = set(Path("/tmp").iterdir())
    report = _upload(client, [("batch.zip", archive), ("../../evil-upload.png", broken.fmnist_png(10)),
                              ("/etc/evil-upload-abs.png", broken.fmnist_png(11))])
    imported = {i["filename"] for i in report["imported"]}
    assert "batch.zip/fine/inside.png" in imported
    rejected = {r["filename"]: r["error"] for r in report["rejected"]}
    for name in ["../../evil.png", "/tmp/evil-absolute.png", "..\\..\\evil-backslash.png", "C:/evil-drive.png",
                 "ok/../../evil-inner.png"]:
        assert "unsafe path" in rejected[f"batch.zip/{name}"], rejected
    # Uploaded names are labels, not paths: the bytes go to the content-addressed store either way.
    assert all("evil" not in p.name for p in Path("/tmp").iterdir() if p not in before)
    assert not [p for p in files_under(tmp_path) if "evil" in p.name]
    assert {"../../evil-upload.png", "etc/evil-upload-abs.png"} <= imported
    with db.reading() as session:
        keys = session.scalars(select(Image.stored_path)).all()
    assert len(keys) == len(imported)
    assert all(not PurePosixPath(k).is_absolute() and ".." not in PurePosixPath(k).parts for k in keys), keys
    assert all("evil" not in k for k in keys)  # the store names files by content hash only
