"""A pHash match needs the thumbnails' agreement before two images count as near-duplicates (issue 13, item 9)."""

from __future__ import annotations

import io

from PIL import Image

from tests import fmnist
from tests.factories import add_class, label, upload


def _png(pixels) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def test_look_alikes_are_not_flagged_but_real_copies_are(client):
    images, _ = fmnist.load("train", 8558)
    jpeg = io.BytesIO()
    Image.fromarray(images[7]).convert("RGB").save(jpeg, "JPEG", quality=85)
    report = upload(client, [("a.png", _png(images[5085])), ("b.png", _png(images[8557])),  # equal pHashes
                             ("c.png", _png(images[7])), ("c-copy.jpg", jpeg.getvalue())], source="web")
    a, b, c, c_copy = (x["id"] for x in report["imported"])
    meta = {i: client.get(f"/api/images/{i}").json() for i in (a, b, c, c_copy)}
    assert meta[a]["phash"] == meta[b]["phash"]  # pHash alone would call these two sweaters one picture
    for name in ("pullover", "coat"):
        add_class(client, name)
    for image_id, cls in ((a, "pullover"), (b, "coat"), (c, "pullover"), (c_copy, "coat")):
        label(client, image_id, cls)
    r = client.post("/api/quality/duplicates")
    assert r.status_code == 200 and r.json()["groups"] == 1, r.text
    flagged = {f["image"] for f in client.get("/api/flags", params={"kind": "duplicate"}).json()["items"]}
    assert flagged == {c, c_copy}
    health = client.get("/api/snapshots/live/health").json()
    assert health["effective"]["non_duplicate"] == 3  # a, b, and the pair c + copy
    rows = {(r["kind"], r["what"]): r for r in client.get("/api/quality/duplicates").json()["rows"]}
    assert rows[("exact", "any")]["groups"] == 0 and rows[("near", "any")]["examples"] == [[c, c_copy]]


def _space(settings, db, vectors: dict[int, list[float]]) -> int:
    """A succeeded embed job whose embedding files hold `vectors` (image id -> vector), as the worker writes them."""
    import numpy as np

    from app.db.models import Job
    from app.embeddings import files
    from app.timeutil import utcnow

    ids = sorted(vectors)
    with db.writing() as s:
        job = Job(kind="embed", config={}, status="succeeded", finished_at=utcnow())
        s.add(job)
        s.flush()
        writer = files.Writer(settings.jobs_dir / f"job-{job.id}", ids, 3)
        writer.write(ids, np.array([vectors[i] for i in ids], dtype=np.float32))
        info = writer.finish()
        job.artifacts = {"embeddings": info["embeddings"], "embedding_ids": info["embedding_ids"]}
        s.commit()
        return job.id


def test_where_both_images_have_embeddings_they_must_agree_too(client, settings, db):
    """A JPEG copy whose thumbnails agree is a near-duplicate while the latest space puts the two together;
    a space that puts them far apart vetoes it; a copy without embeddings is judged by its thumbnails."""
    images, _ = fmnist.load("train", 20)
    files = []
    for i in (7, 11):
        jpeg = io.BytesIO()
        Image.fromarray(images[i]).convert("RGB").save(jpeg, "JPEG", quality=85)
        files += [(f"{i}.png", _png(images[i])), (f"{i}-copy.jpg", jpeg.getvalue())]
    c, c_copy, d, d_copy = (x["id"] for x in upload(client, files, source="web")["imported"])

    def flagged() -> set[int]:
        r = client.post("/api/quality/duplicates")
        assert r.status_code == 200, r.text
        return {f["image"] for f in client.get("/api/flags", params={"kind": "duplicate"}).json()["items"]}

    for name in ("pullover", "coat"):
        add_class(client, name)
    for image_id, cls in ((c, "pullover"), (c_copy, "coat"), (d, "pullover"), (d_copy, "coat")):
        label(client, image_id, cls)
    assert flagged() == {c, c_copy, d, d_copy}                      # no space yet: the thumbnails decide
    _space(settings, db, {c: [1, 0, 0], c_copy: [1, 0.001, 0]})     # the model sees one picture (distance 5e-7)
    assert flagged() == {c, c_copy, d, d_copy}
    _space(settings, db, {c: [1, 0, 0], c_copy: [0.6, 0.8, 0]})     # a newer space: cosine distance 0.4
    assert flagged() == {d, d_copy}                                 # d has no embeddings: thumbnails still decide
