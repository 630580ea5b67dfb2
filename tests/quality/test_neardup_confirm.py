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
