"""Uploading images with their labels over HTTP (the overview page and the API): class folders inside a zip,
or a label file beside the images; checked before anything is imported."""

from __future__ import annotations

import io
import zipfile

from tests import fmnist


def _zip(paths, root) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in paths:
            zf.write(p, p.relative_to(root).as_posix())
    return buf.getvalue()


def _history(client, image_id: int) -> list[dict]:
    return client.get(f"/api/images/{image_id}").json()["history"]


def test_class_folders_inside_an_uploaded_zip_become_import_labels(client, tmp_path):
    paths = fmnist.write_pngs(tmp_path / "set", 8, folders=True)
    r = client.post("/api/images", data={"source": "shop", "labels_format": "folders"},
                    files=[("files", ("set.zip", _zip(paths, tmp_path), "application/zip"))])
    assert r.status_code == 200, r.text
    got = r.json()
    assert len(got["imported"]) == 8 and got["labels"]["labelled"] == 8 and got["labels"]["format"] == "folders"
    assert sorted(got["labels"]["new_classes"]) == sorted({p.parent.name for p in paths})
    for item in got["imported"]:
        event = _history(client, item["id"])[-1]
        assert event["kind"] == "import" and event["class"] == item["filename"].split("/")[-2]
        assert event["annotator"] == "import:shop"


def test_an_uploaded_manifest_labels_the_files_and_keeps_its_annotator_name(client, tmp_path):
    paths = fmnist.write_pngs(tmp_path, 3)
    manifest = "file,label,confidence\n" + "".join(f"{p.name},{c},0.6\n" for p, c in zip(paths, ["bag", "coat", "bag"]))
    files = [("files", (p.name, p.read_bytes(), "image/png")) for p in paths]
    files.append(("labels", ("labels.csv", manifest.encode(), "text/csv")))
    r = client.post("/api/images", data={"source": "web"}, files=files)
    assert r.status_code == 200, r.text
    report = r.json()["labels"]
    assert report["labelled"] == 3 and report["format"] == "loupe" and report["unmatched"] == []
    ids = {i["filename"]: i["id"] for i in r.json()["imported"]}
    event = _history(client, ids[paths[1].name])[-1]
    assert (event["class"], event["confidence"], event["annotator"]) == ("coat", 0.6, "import:labels.csv")


def test_a_bad_label_file_is_refused_and_nothing_is_imported(client, tmp_path):
    paths = fmnist.write_pngs(tmp_path, 2)
    files = [("files", (p.name, p.read_bytes(), "image/png")) for p in paths]
    files.append(("labels", ("labels.csv", b"file,label,confidence\nx.png,bag,lots\n", "text/csv")))
    r = client.post("/api/images", data={"source": "web"}, files=files)
    assert r.status_code == 422 and "line 2" in r.json()["detail"]
    assert client.get("/api/images").json()["total"] == 0
