"""Review evidence without a model: an outlier flag shows the neighbours its analysis stored and how far it lies
from its class, is decided like a mislabel (keep, relabel, exclude, undo), and a flag with no embeddings says so."""

from __future__ import annotations

import html as htmllib
import re

from sqlalchemy import select

from app.db.models import Flag, LabelEvent
from app.quality.evidence import agreement_text
from tests.factories import add_class, label, upload_fmnist

LONG = "Trousers with a very long name that would never fit under a thumbnail of eighty pixels"


def _outlier(db, image_id: int, neighbours: list[int], *, cls: str | None, score: float = 0.985,
             against: str = "label", event: int | None = None) -> int:
    """An open outlier flag as app.embeddings.analyse writes one (details shape agreed with it)."""
    with db.writing() as s:
        flag = Flag(image_id=image_id, kind="outlier", score=score, status="open", details={
            "analysis": 41, "space": 40, "neighbours": neighbours,
            "distances": [round(0.30 + 0.01 * i, 4) for i in range(len(neighbours))], "class": cls,
            "compared_with": against, "distance": 0.42, "usual": 0.1, "label_event_id": event})
        s.add(flag)
        s.commit()
        return flag.id


def _strip(html: str) -> list[tuple[int, str]]:
    """(image id, caption) of each thumbnail in the page's similar-images strip, in order."""
    items = re.findall(r'<li class="strip-item[^"]*" data-id="(\d+)">.*?<span class="similar-label">([^<]*)</span>',
                       html, re.S)
    return [(int(i), htmllib.unescape(c)) for i, c in items]


def test_an_outlier_flag_shows_its_stored_neighbours_and_how_far_it_lies(client, db):
    add_class(client, "Sneaker")
    add_class(client, LONG)
    ids = upload_fmnist(client, 10)
    event = label(client, ids[0], "Sneaker")["id"]
    label(client, ids[1], "Sneaker")
    label(client, ids[2], LONG)
    client.post(f"/api/images/{ids[3]}/exclude", json={"reason": "blurred", "annotator": "ann"})
    flag = _outlier(db, ids[0], [ids[2], ids[1], ids[3], ids[4]], cls="Sneaker", event=event)

    html = client.get("/review", params={"kind": "outlier"}).text
    assert f'data-flag-id="{flag}"' in html and 'href="/review?kind=outlier"' in html
    assert "Far from every Sneaker: 4.2 times the usual distance" in html
    assert "cosine distance to the farthest of its nearest labelled images 0.420; usual 0.100" in html
    # The neighbours the analysis measured, nearest first, each with today's label; a long name is cut by CSS
    # and whole in the title; the excluded one says so; one labelled otherwise than the flagged image is marked.
    assert _strip(html) == [(ids[2], LONG), (ids[1], "Sneaker"), (ids[3], "unlabelled"), (ids[4], "unlabelled")]
    assert f'title="{LONG}"' in html and "excluded</span>" in html
    assert re.search(rf'<li class="strip-item differs" data-id="{ids[2]}">', html)
    assert f'href="/images/{ids[1]}" target="_blank"' in html and f'value="{ids[1]}"' in html
    assert "The neighbours analysis #41 measured" in html
    assert "Label 0 selected" in html and '<option value="">choose a class' in html
    assert client.get("/api/flags", params={"kind": "outlier"}).json()["total"] == 1
    assert client.get("/review/stage", params={"kind": "outlier"}).text.count('class="strip-item') == 4


def test_outlier_flags_are_decided_like_mislabels_and_undone(client, db):
    add_class(client, "Sneaker")
    add_class(client, "Bag")
    ids = upload_fmnist(client, 6)
    event = label(client, ids[0], "Sneaker")["id"]
    kept = _outlier(db, ids[0], ids[1:4], cls="Sneaker", event=event)
    stray = _outlier(db, ids[5], ids[1:4], cls="Bag", against="prediction", score=0.995)
    assert "Far from every Bag (the class the model predicts for it)" in client.get("/review").text  # top score

    def resolve(flag, action, **body):
        r = client.post(f"/api/flags/{flag}/resolve", json={"action": action, "annotator": "rita", **body})
        assert r.status_code == 200, r.text
        return r.json()

    def undo(flag):
        r = client.post(f"/api/flags/{flag}/undo", json={"annotator": "rita"})
        assert r.status_code == 200, r.text
        return r.json()

    # An unlabelled stray kept ("it belongs"): resolved, no label invented; undo opens it again.
    assert resolve(stray, "keep")["event"] is None
    assert client.get(f"/api/flags/{stray}").json()["resolution"] == "keep"
    assert undo(stray)["flag"]["status"] == "open"
    assert client.get(f"/api/images/{ids[5]}").json()["label"] is None
    # Relabelled instead: a review label event; undo takes it back.
    assert resolve(stray, "relabel", **{"class": "Bag"})["event"] is not None
    assert client.get(f"/api/images/{ids[5]}").json()["label"]["class"] == "Bag"
    undo(stray)
    assert client.get(f"/api/images/{ids[5]}").json()["label"] is None
    # A labelled outlier kept: the label restated by a review event, as for a mislabel.
    out = resolve(kept, "keep")
    with db.reading() as s:
        assert s.get(LabelEvent, out["event"]).kind == "review"
    undo(kept)
    resolve(kept, "exclude")
    assert client.get(f"/api/images/{ids[0]}").json()["excluded"] is True
    undo(kept)
    assert client.get(f"/api/images/{ids[0]}").json()["excluded"] is False
    with db.reading() as s:
        assert {f.status for f in s.scalars(select(Flag))} == {"open"}


def test_a_flag_without_embeddings_says_so_in_one_line(client, db):
    add_class(client, "Sneaker")
    ids = upload_fmnist(client, 3)
    label(client, ids[0], "Sneaker")
    with db.writing() as s:
        s.add(Flag(image_id=ids[0], kind="audit", score=0.5, status="open", details={}))
        s.commit()
    html = client.get("/review").text
    assert "Similar images" in html and 'class="strip-item' not in html
    assert re.search(r'<p class="hint" id="similar-why">no embeddings cover image \d+ yet', html)
    assert "Neighbours' labels" not in html  # no analysis: no agreement line


def test_agreement_in_words():
    ev = {"share": 0.7, "k": 10, "agree": 7, "classes": {"Shirt": 7, "T-shirt/top": 3}, "analysis": 5}
    assert agreement_text(ev, "Shirt") == "7 of 10 nearest neighbours (out of sample) are labelled Shirt; 3 T-shirt/top"
    ev = {"share": 0.1, "k": 10, "agree": 1, "classes": {"Coat": 6, "Shirt": 1, "Bag": 2}, "analysis": 5}
    assert agreement_text(ev, "Shirt") == ("1 of 10 nearest neighbours (out of sample) is labelled Shirt; "
                                           "6 Coat, 2 Bag, 1 unlabelled now")
    assert agreement_text(None, "Shirt") is None and agreement_text(ev, None) is None
