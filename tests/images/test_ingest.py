"""import_paths / import_uploads on real Fashion-MNIST PNGs and on broken files."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from app.db.models import Image, ImportBatch, Source
from app.errors import InvalidInput
from app.images import store
from app.images.ingest import import_paths, import_uploads
from tests.images import broken


def _files(settings) -> dict[str, list[Path]]:
    dirs = {"store": settings.store_dir, "thumbs": settings.thumbs_dir, "previews": settings.previews_dir}
    found = {name: sorted(p for p in d.rglob("*") if p.is_file()) for name, d in dirs.items()}
    found["tmp"] = sorted(settings.tmp_dir.rglob("*"))
    return found


def _assert_store_matches_db(db, settings) -> list[Image]:
    """Exactly one original, thumbnail and preview per row; nothing else, nothing left in tmp."""
    with db.reading() as session:
        rows = list(session.scalars(select(Image)))
    files = _files(settings)
    assert files["tmp"] == []
    assert files["store"] == sorted(store.original_path(settings, r) for r in rows)
    assert files["thumbs"] == sorted(store.thumb_path(settings, r.sha256) for r in rows)
    assert files["previews"] == sorted(store.preview_path(settings, r.sha256) for r in rows)
    return rows


def _rejections(report) -> dict[str, str]:
    return {item["filename"]: item["error"] for item in report.rejected}


def test_folder_of_fashion_mnist_imports_every_image(db, settings, fmnist_dir):
    progress = []
    report = import_paths(
        db, settings, [fmnist_dir], source="  fashion-mnist ", on_progress=lambda d, t: progress.append((d, t))
    )
    assert len(report.imported) == 200 and report.duplicates == [] and report.rejected == []
    assert progress[-1] == (200, 200) and len(progress) == 200
    rows = _assert_store_matches_db(db, settings)
    assert len(rows) == 200
    source_path = fmnist_dir / "coat"
    coat = sorted(source_path.iterdir())[0]
    row = next(r for r in rows if r.original_filename == f"{fmnist_dir.name}/coat/{coat.name}")
    assert store.original_path(settings, row).read_bytes() == coat.read_bytes()
    assert (row.width, row.height, row.format, row.mode) == (28, 28, "PNG", "L")
    assert {r["id"] for r in report.imported} == {r.id for r in rows}
    with db.reading() as session:
        assert session.scalars(select(Source.name)).all() == ["fashion-mnist"]
        batch = session.scalars(select(ImportBatch)).one()
        assert batch.origin == "cli"
        assert {r.batch_id for r in rows} == {batch.id}


def test_reimport_reports_duplicates_with_existing_ids_and_stores_nothing_twice(db, settings, fmnist_dir):
    first = import_paths(db, settings, [fmnist_dir / "bag"], source="fm")
    before = _files(settings)
    again = import_paths(db, settings, [fmnist_dir / "bag"], source="fm")
    assert again.imported == []
    assert sorted((d["id"], d["filename"]) for d in again.duplicates) == sorted(
        (i["id"], i["filename"]) for i in first.imported
    )
    assert _files(settings) == before
    with db.reading() as session:
        assert session.scalar(select(func.count(ImportBatch.id))) == 2
        assert session.scalar(select(func.count(Source.id))) == 1


def test_same_bytes_twice_in_one_batch(db, settings, tmp_path):
    png = broken.fmnist_png(3)
    (tmp_path / "a.png").write_bytes(png)
    (tmp_path / "b.png").write_bytes(png)
    report = import_paths(db, settings, [tmp_path / "a.png", tmp_path / "b.png"], source="s")
    assert [i["filename"] for i in report.imported] == ["a.png"]
    assert report.duplicates == [{"id": report.imported[0]["id"], "filename": "b.png"}]
    assert len(_assert_store_matches_db(db, settings)) == 1


def _bad_folder(folder: Path) -> dict[str, bytes]:
    bad = {
        "truncated.jpg": broken.truncated_jpeg(),
        "truncated.png": broken.truncated_png(),
        "notes.jpg": broken.not_an_image(),
        "empty.png": b"",
        "bomb.png": broken.png_header_only(30000, 30000),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in bad.items():
        (folder / name).write_bytes(data)
    return bad


EXPECTED_ERRORS = {
    "truncated.jpg": "image data is truncated or damaged",
    "truncated.png": "image data is truncated or damaged",
    "notes.jpg": "not an image Loupe can read",
    "empty.png": "empty file (0 bytes)",
    "bomb.png": "image is 30000x30000 (900.0 MP), over the limit of 80.0 MP (LOUPE_MAX_PIXELS)",
}


@pytest.mark.parametrize("good", [3, 60], ids=["in-process", "worker-pool"])
def test_bad_files_are_rejected_each_with_its_reason_while_the_rest_imports(db, settings, tmp_path, fmnist_dir, good):
    folder = tmp_path / "mixed"
    _bad_folder(folder)
    for png in sorted(fmnist_dir.rglob("*.png"))[:good]:
        shutil.copy(png, folder / png.name)
    (folder / "readme.txt").write_text("not an image")
    (folder / ".DS_Store").write_bytes(b"\0")
    report = import_paths(db, settings, [folder], source="mixed")
    assert len(report.imported) == good
    assert report.ignored == 2
    errors = _rejections(report)
    assert set(errors) == {f"mixed/{name}" for name in EXPECTED_ERRORS}
    for name, expected in EXPECTED_ERRORS.items():
        assert expected in errors[f"mixed/{name}"]
    assert len(_assert_store_matches_db(db, settings)) == good


def test_file_over_the_size_limit_is_rejected_before_reading(db, settings, tmp_path):
    settings.max_file_bytes = 5_000
    (tmp_path / "big.jpg").write_bytes(broken.encoded(broken.photo(400, 300), "JPEG", quality=95))
    (tmp_path / "small.png").write_bytes(broken.fmnist_png(1))
    report = import_paths(db, settings, [tmp_path], source="s")
    assert len(report.imported) == 1
    (error,) = _rejections(report).values()
    assert error.startswith("file is ") and "over the limit of 5,000 bytes (LOUPE_MAX_FILE_BYTES)" in error


def test_pixel_limit_comes_from_settings(db, settings):
    settings.max_pixels = 500
    report = import_uploads(db, settings, [("x.png", io.BytesIO(broken.fmnist_png(0)))], source="s")
    assert report.rejected == [
        {"filename": "x.png", "error": "image is 28x28 (0.0 MP), over the limit of 0.0 MP (LOUPE_MAX_PIXELS)"}
    ]


def test_zip_members_import_and_unsafe_entries_are_refused(db, settings, tmp_path):
    archive = broken.zip_bytes(
        {
            "shirts/a.png": broken.fmnist_png(0),
            "shirts/b.png": broken.fmnist_png(1),
            "../escape.png": broken.fmnist_png(2),
            "/abs/path.png": broken.fmnist_png(3),
            "inner.zip": broken.zip_bytes({"c.png": broken.fmnist_png(4)}),
            "__MACOSX/shirts/._a.png": b"\0\0",
            "shirts/.hidden.png": broken.fmnist_png(5),
            "notes.txt": b"hello",
            "shirts/bad.png": broken.truncated_png(),
        },
        symlinks={"link.png": "/etc/passwd"},
    )
    (tmp_path / "batch.zip").write_bytes(archive)
    report = import_paths(db, settings, [tmp_path / "batch.zip"], source="zips")
    assert [i["filename"] for i in report.imported] == ["batch.zip/shirts/a.png", "batch.zip/shirts/b.png"]
    errors = _rejections(report)
    assert "unsafe path" in errors["batch.zip/../escape.png"]
    assert "unsafe path" in errors["batch.zip//abs/path.png"]
    assert errors["batch.zip/inner.zip"] == "nested archives are not read"
    assert errors["batch.zip/link.png"] == "symbolic links in archives are not read"
    assert "truncated or damaged" in errors["batch.zip/shirts/bad.png"]
    assert len(errors) == 5
    assert report.ignored == 3
    rows = _assert_store_matches_db(db, settings)
    assert sorted(r.original_filename for r in rows) == ["batch.zip/shirts/a.png", "batch.zip/shirts/b.png"]


@pytest.mark.parametrize(
    "limit,value,message",
    [
        ("max_zip_bytes", 1_000, "archive expands to"),
        ("max_zip_entries", 2, "archive has 3 entries, over the limit of 2 (LOUPE_MAX_ZIP_ENTRIES)"),
    ],
)
def test_zip_over_a_limit_is_rejected_whole(db, settings, tmp_path, limit, value, message):
    setattr(settings, limit, value)
    members = {f"{i}.png": broken.fmnist_png(i) for i in range(3)}
    (tmp_path / "batch.zip").write_bytes(broken.zip_bytes(members))
    (tmp_path / "loose.png").write_bytes(broken.fmnist_png(7))
    report = import_paths(db, settings, [tmp_path], source="s")
    assert [i["filename"] for i in report.imported] == [f"{tmp_path.name}/loose.png"]
    assert len(report.rejected) == 1
    assert report.rejected[0]["filename"] == f"{tmp_path.name}/batch.zip"
    assert message in report.rejected[0]["error"]
    assert len(_assert_store_matches_db(db, settings)) == 1


def test_corrupt_zip_is_rejected(db, settings, tmp_path):
    (tmp_path / "broken.zip").write_bytes(broken.corrupt_zip())
    report = import_paths(db, settings, [tmp_path / "broken.zip"], source="s")
    assert report.imported == []
    assert report.rejected[0]["filename"] == "broken.zip"
    assert report.rejected[0]["error"].startswith("not a readable zip archive")


def test_uploads_with_a_zip_count_as_the_files_inside(db, settings):
    archive = broken.zip_bytes({"d/x.png": broken.fmnist_png(0), "d/y.png": broken.fmnist_png(1)})
    uploads = [
        ("batch.zip", io.BytesIO(archive)),
        ("single.png", io.BytesIO(broken.fmnist_png(2))),
        ("copy.png", io.BytesIO(broken.fmnist_png(0))),
        ("broken.jpg", io.BytesIO(broken.truncated_jpeg())),
    ]
    report = import_uploads(db, settings, uploads, source="web")
    data = report.as_dict()
    assert [i["filename"] for i in data["imported"]] == ["batch.zip/d/x.png", "batch.zip/d/y.png", "single.png"]
    assert data["duplicates"] == [{"id": data["imported"][0]["id"], "filename": "copy.png"}]
    assert [r["filename"] for r in data["rejected"]] == ["broken.jpg"]
    assert set(data) == {"imported", "duplicates", "rejected", "ignored"}
    with db.reading() as session:
        assert session.scalars(select(ImportBatch.origin)).all() == ["upload"]


@pytest.mark.parametrize("source,message", [("   ", "must not be empty"), ("x" * 201, "over the limit of 200")])
def test_source_name_is_checked_before_any_work(db, settings, fmnist_dir, source, message):
    with pytest.raises(InvalidInput, match=message):
        import_paths(db, settings, [fmnist_dir], source=source)
    with db.reading() as session:
        assert session.scalar(select(func.count(ImportBatch.id))) == 0


def test_missing_path_is_invalid_input(db, settings, tmp_path):
    with pytest.raises(InvalidInput, match="no such file or folder"):
        import_paths(db, settings, [tmp_path / "nope"], source="s")


REFUSE_FOURTH = {
    "sqlite": ["CREATE TRIGGER refuse BEFORE INSERT ON images WHEN NEW.original_filename LIKE '%img-3%' "
               "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"],
    "postgresql": ["CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ "
                   "BEGIN RAISE EXCEPTION 'disk on fire'; END $$",
                   "CREATE TRIGGER refuse BEFORE INSERT ON images FOR EACH ROW "
                   "WHEN (NEW.original_filename LIKE '%img-3%') EXECUTE FUNCTION refuse()"],
}


def test_failed_database_write_leaves_no_files_and_no_rows(db, settings, tmp_path):
    for i in range(5):
        (tmp_path / f"img-{i}.png").write_bytes(broken.fmnist_png(i))
    with db.writing() as session:  # a real failure from inside the database, on the fourth row
        for sql in REFUSE_FOURTH[session.get_bind().dialect.name]:
            session.execute(text(sql))
        session.commit()
    with pytest.raises(Exception, match="disk on fire"):
        import_paths(db, settings, [tmp_path], source="s")
    assert _assert_store_matches_db(db, settings) == []


def test_large_upload_from_a_server_thread_uses_the_worker_pool(db, settings):
    """As the web app calls it: from a thread (so workers come from a fork server), zip bytes sent to workers."""
    import threading

    members = {f"z/{i:02d}.png": broken.fmnist_png(i) for i in range(40)}
    members["z/bad.png"] = broken.truncated_png()
    result = {}

    def run():
        uploads = [("many.zip", io.BytesIO(broken.zip_bytes(members)))]
        result["report"] = import_uploads(db, settings, uploads, source="web")

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    report = result["report"]
    assert len(report.imported) + len(report.duplicates) == 40
    assert _rejections(report).keys() == {"many.zip/z/bad.png"}
    assert len(_assert_store_matches_db(db, settings)) == len(report.imported)
