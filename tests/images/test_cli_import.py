"""`loupe import` as a user runs it: the installed console script on a folder and a zip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from app.db.engine import Database
from app.db.models import Image, ImportBatch, Source
from tests import databases
from tests.images import broken

LOUPE = Path(sys.executable).with_name("loupe")


def _loupe(*args: str) -> subprocess.CompletedProcess:
    command = [str(LOUPE)] if LOUPE.exists() else [sys.executable, "-m", "app.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOUPE_")} | databases.data_env(args)
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120, env=env)


def test_import_folder_and_zip_prints_summary_and_fills_the_database(tmp_path, fmnist_dir):
    data = tmp_path / "data"  # not created yet: the command makes it and migrates
    archive = tmp_path / "extra.zip"
    archive.write_bytes(
        broken.zip_bytes(
            {
                "more/a.png": broken.encoded(broken.photo(60, 40, seed=1), "PNG"),
                "more/cut.jpg": broken.truncated_jpeg(),
                "../evil.png": broken.fmnist_png(0),
                "more/notes.txt": b"hi",
            }
        )
    )
    bag = fmnist_dir / "bag"
    result = _loupe("import", str(bag), str(archive), "--source", "catalogue", "--data", str(data))
    assert result.returncode == 0, result.stderr
    bags = len(list(bag.glob("*.png")))
    lines = result.stdout.splitlines()
    assert lines[0] == f"imported {bags + 1}, duplicates 0, rejected 2, ignored 1 (not images)"
    assert "  extra.zip/more/cut.jpg: image data is truncated or damaged" in result.stdout
    assert "  extra.zip/../evil.png: unsafe path in archive" in result.stdout

    db = Database(databases.settings_for(data).database_url)
    with db.reading() as session:
        names = set(session.scalars(select(Image.original_filename)))
        assert len(names) == bags + 1
        assert "extra.zip/more/a.png" in names and f"bag/{sorted(bag.iterdir())[0].name}" in names
        assert session.scalars(select(Source.name)).all() == ["catalogue"]
        assert session.scalars(select(ImportBatch.origin)).all() == ["cli"]
    db.dispose()

    again = _loupe("import", str(bag), "--source", "catalogue", "--data", str(data))
    assert again.returncode == 0
    assert again.stdout.splitlines()[0] == f"imported 0, duplicates {bags}, rejected 0, ignored 0 (not images)"


def test_usage_errors_exit_2_with_a_clear_message(tmp_path):
    missing = _loupe("import", str(tmp_path / "nowhere"), "--source", "s", "--data", str(tmp_path / "d"))
    assert missing.returncode == 2
    assert f"no such file or folder: {tmp_path / 'nowhere'}" in missing.stderr
    (tmp_path / "x.png").write_bytes(broken.fmnist_png(0))
    no_source = _loupe("import", str(tmp_path / "x.png"), "--data", str(tmp_path / "d"))
    assert no_source.returncode == 2 and "--source" in no_source.stderr
    blank = _loupe("import", str(tmp_path / "x.png"), "--source", "  ", "--data", str(tmp_path / "d"))
    assert blank.returncode == 2 and "source must not be empty" in blank.stderr
