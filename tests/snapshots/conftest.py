"""A small labelled dataset made through the HTTP API: 3 classes x 2 sources, varied confidence, tags and time."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests import databases
from tests.factories import add_class, label, upload_fmnist

CLASSES = ("shirt", "shoe", "bag")
CONFIDENCES = (1.0, 1.0, 0.6, 0.3, 0.9)


def tags_for(n: int) -> list[str]:
    return ["blurred", "occluded"] if n % 11 == 0 else ["dark"] if n % 7 == 0 else []


@dataclass
class Labelled:
    client: object
    studio: list[int]
    web: list[int]
    given: dict[int, dict]  # image id -> the label fields sent

    @property
    def ids(self) -> list[int]:
        return self.studio + self.web


@pytest.fixture(scope="session")
def labelled_template(tmp_path_factory, database_template) -> tuple[Path, list[int], list[int], dict, str]:
    """Built once per run (uploads are slow); each test gets a copy of the data dir and the database."""
    data = tmp_path_factory.mktemp("labelled") / "data"
    settings = Settings(data=data, database_url=database_template.fresh(data))
    settings.ensure_dirs()
    with TestClient(create_app(settings)) as client:
        for name in CLASSES:
            add_class(client, name)
        studio = upload_fmnist(client, 60, source="studio")
        web = upload_fmnist(client, 30, start=60, source="web")
        given = {}
        for n, image_id in enumerate(studio + web):
            fields = {"confidence": CONFIDENCES[n % 5], "tags": tags_for(n), "annotator": "ana"}
            if n % 6:
                fields["ms"] = 400 * n
            label(client, image_id, CLASSES[n % 3], **fields)
            given[image_id] = {"class": CLASSES[n % 3], "source": "studio" if n < 60 else "web", **fields}
    yield settings.data_dir, studio, web, given, settings.database_url
    databases.drop(settings.database_url)


@pytest.fixture
def labelled(settings, labelled_template) -> Labelled:
    """90 images labelled over HTTP: 60 from "studio", 30 from "web"; class = position mod 3."""
    data, studio, web, given, url = labelled_template
    shutil.copytree(data, settings.data_dir, dirs_exist_ok=True)
    databases.restore(settings.database_url, url)
    with TestClient(create_app(settings)) as client:
        yield Labelled(client, list(studio), list(web), copy.deepcopy(given))


def freeze(client, name: str, **body) -> dict:
    r = client.post("/api/snapshots", json={"name": name, **body})
    assert r.status_code == 201, r.text
    return r.json()


def items(client, snapshot_id: int) -> list[dict]:
    r = client.get(f"/api/snapshots/{snapshot_id}/items")
    assert r.status_code == 200, r.text
    return r.json()["items"]


LOUPE = Path(sys.executable).with_name("loupe")


def run_loupe(*args: str) -> subprocess.CompletedProcess:
    """The installed `loupe` command as a user runs it (no LOUPE_* settings leak in but the database of --data)."""
    command = [str(LOUPE)] if LOUPE.exists() else [sys.executable, "-m", "app.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOUPE_")} | databases.data_env(args)
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, timeout=300, env=env)


@dataclass
class Changed:
    old: dict
    new: dict
    gone: int  # excluded after "old"
    relabelled: int
    added: int  # imported and labelled after "old"


def freeze_change_freeze(labelled: Labelled, db) -> Changed:
    """Freeze "old" (seed 0); exclude one image, relabel one, import and label one; freeze "new" with
    another seed, so that images move between splits too."""
    from app.db.models import Image

    client = labelled.client
    old = freeze(client, "old", split={"seed": 0})
    gone, relabelled = labelled.ids[3], labelled.ids[4]
    with db.writing() as s:
        s.get(Image, gone).excluded = True
        s.commit()
    label(client, relabelled, "bag" if labelled.given[relabelled]["class"] != "bag" else "shirt")
    added = upload_fmnist(client, 1, start=200)[0]
    label(client, added, "shoe")
    return Changed(old, freeze(client, "new", split={"seed": 5}), gone, relabelled, added)
