"""The review page's whole-dataset parts stay cheap (issue 16): the near-duplicate strip reads only the images
imported since the last view and confirms its nearest candidates first; the stale-flag safety net skips a
pass when nothing it reads changed, and still sees a change made behind the app's back."""

from __future__ import annotations

import re

from sqlalchemy import text

from app.db.models import Flag
from app.quality import evidence
from tests.factories import add_class, label, near_duplicates, upload, upload_fmnist


def _open_flag(db, image_id: int, kind: str = "mislabel") -> int:
    with db.writing() as s:
        flag = Flag(image_id=image_id, kind=kind, status="open", score=0.9, details={})
        s.add(flag)
        s.commit()
        return flag.id


def _near(html: str) -> list[int]:
    """Image ids in the page's near-duplicates row, in order."""
    row = html.split("<h3>Near-duplicates</h3>", 1)[1].split("<h3>Similar images</h3>", 1)[0]
    return [int(i) for i in re.findall(r'<figure class="neighbour[^"]*">\s*<a href="/images/(\d+)"', row)]


def test_the_strip_finds_images_imported_after_the_last_view(client, db):
    add_class(client, "shirt")
    variants = near_duplicates(4)
    first = upload(client, variants[:1])["imported"][0]["id"]
    label(client, first, "shirt")
    flag = _open_flag(db, first)
    assert _near(client.get("/review", params={"flag": flag}).text) == []
    others = [it["id"] for it in upload(client, variants[1:])["imported"]]
    upload_fmnist(client, 2, start=100)  # unrelated images, imported in the same stretch
    # The copies (one pixel apart, their thumbnails alike) are read from the new rows alone and shown.
    assert sorted(_near(client.get("/review", params={"flag": flag}).text)) == sorted(others)


def test_the_strip_shows_the_nearest_confirmed_candidates_first(client, db):
    add_class(client, "shirt")
    ids = upload_fmnist(client, 2)
    label(client, ids[0], "shirt")
    flag = _open_flag(db, ids[0])
    with db.writing() as s:
        # 150 rows 3 bits away, then 5 exact copies with higher ids: more candidates than one round confirms.
        # Their thumbnails are not stored, so the pHash verdict stands for each (as for any unreadable thumbnail).
        for n, flip in [(i, 7) for i in range(150)] + [(150 + i, 0) for i in range(5)]:
            s.execute(text("""
                INSERT INTO images (sha256, stored_path, original_filename, source_id, batch_id, width, height,
                                    format, mode, byte_size, phash, imported_at, excluded)
                SELECT :sha, stored_path, original_filename, source_id, batch_id, width, height, format, mode,
                       byte_size, (phash | :flip) - (phash & :flip), imported_at, excluded FROM images WHERE id = :id
            """), {"sha": f"{n:064x}", "flip": flip, "id": ids[0]})  # phash XOR flip, in SQL both databases speak
        s.commit()
        rows = s.execute(text("SELECT id FROM images WHERE id > :i ORDER BY id"), {"i": ids[1]}).all()
    got = _near(client.get("/review", params={"flag": flag}).text)
    exact = [i for (i,) in rows[150:]]
    far = [i for (i,) in rows[:150]]
    assert len(got) == evidence.NEIGHBOURS
    assert got[:5] == exact and got[5:] == far[:evidence.NEIGHBOURS - 5]  # nearest first, then oldest


def test_the_safety_net_sees_a_change_made_behind_the_apps_back(client, db):
    add_class(client, "shirt")
    ids = upload_fmnist(client, 3)
    for i in ids:
        label(client, i, "shirt")
    flags = [_open_flag(db, i) for i in ids]
    assert client.get("/review").status_code == 200  # a pass: nothing stale
    assert client.get("/review").status_code == 200  # nothing changed since: skipped
    with db.writing() as s:  # no exclusion event, no label event: only the excluded count moves
        s.execute(text("UPDATE images SET excluded = :t WHERE id = :i"), {"t": True, "i": ids[1]})
        s.commit()
    assert client.get("/review").status_code == 200
    status = {f["id"]: f["status"] for f in client.get("/api/flags", params={"status": ""}).json()["items"]}
    assert [status[f] for f in flags] == ["open", "cancelled", "open"]
    # A flag reopened by a decision that wrote nothing (an undone "ambiguous") is looked at again too.
    r = client.post(f"/api/flags/{flags[2]}/resolve", json={"action": "ambiguous", "annotator": "a"})
    assert r.status_code == 200, r.text
    assert client.get("/review").status_code == 200
    with db.writing() as s:
        s.execute(text("UPDATE images SET excluded = :t WHERE id = :i"), {"t": True, "i": ids[2]})
        s.execute(text("UPDATE images SET excluded = :f WHERE id = :i"), {"f": False, "i": ids[1]})
        s.commit()
    assert client.post(f"/api/flags/{flags[2]}/undo", json={"annotator": "a"}).status_code == 200
    assert client.get("/review").status_code == 200
    status = {f["id"]: f["status"] for f in client.get("/api/flags", params={"status": ""}).json()["items"]}
    assert status[flags[2]] == "cancelled"


def test_flags_come_up_highest_score_first_then_oldest_whatever_their_kind(client, db):
    add_class(client, "shirt")
    ids = upload_fmnist(client, 8)
    for i in ids:
        label(client, i, "shirt")
    scores = [(0.5, "mislabel"), (0.9, "duplicate"), (None, "outlier"), (0.9, "mislabel"), (0.95, "audit"),
              (None, "mislabel"), (0.9, "outlier"), (0.2, "rereview")]
    with db.writing() as s:
        made = [Flag(image_id=i, kind=kind, status="open", score=score, details={})
                for i, (score, kind) in zip(ids, scores)]
        s.add_all(made)
        s.commit()
        flags = [f.id for f in made]
    order = lambda picked: [flags[n] for n in picked]  # noqa: E731

    def reviewed(kind: str | None = None) -> list[int]:
        seen = []
        with db.reading() as s:
            while (flag := evidence.next_flag(s, kind=kind, skip=seen)) is not None:
                seen.append(flag.id)
        return seen

    assert reviewed() == order([4, 1, 3, 6, 0, 2, 5])  # rereview flags are labelled, not reviewed
    assert reviewed("mislabel") == order([3, 0, 5])
    assert reviewed("outlier") == order([6, 2])
    assert reviewed("rereview") == order([7])


def test_the_safety_net_after_a_change_looks_at_the_groups_holding_a_changed_image(client, db):
    add_class(client, "shirt")
    add_class(client, "coat")
    ids = upload_fmnist(client, 4)
    for i, cls in zip(ids, ("shirt", "coat", "shirt", "coat")):
        label(client, i, cls)
    with db.writing() as s:  # the first member's own flag was decided already; the second's is open
        s.add(Flag(image_id=ids[0], kind="duplicate", status="resolved", resolution="keep", score=0.9,
                   details={"group": ids[:2]}))
        grouped = Flag(image_id=ids[1], kind="duplicate", status="open", score=0.9, details={"group": ids[:2]})
        other = Flag(image_id=ids[3], kind="mislabel", status="open", score=0.5, details={})
        s.add_all([grouped, other])
        s.commit()
        grouped, other = grouped.id, other.id
    assert client.get("/review").status_code == 200  # a first pass: the labels disagree, nothing stale
    label(client, ids[0], "coat")  # the image holds no open flag: writing its label cancels nothing
    assert client.get(f"/api/flags/{grouped}").json()["status"] == "open"
    assert client.get("/review").status_code == 200  # the next pass looks at the groups that hold it
    got = client.get(f"/api/flags/{grouped}").json()
    assert got["status"] == "cancelled" and got["details"]["cancelled_because"] == "the near-duplicates' labels agree now"
    assert client.get(f"/api/flags/{other}").json()["status"] == "open"
