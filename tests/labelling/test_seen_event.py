"""A save from a stale view is refused: the labelling page sends the image's label event it saw
(`seen_event`); if the image was labelled since (another tab, another person), 409 and nothing saved."""

from __future__ import annotations

import re

from tests.factories import add_class, label, upload_fmnist


def _seen(text: str) -> str:
    return re.search(r'data-seen-event="(\d*)"', text).group(1)


def _events(client, image_id: int) -> list[dict]:
    return client.get(f"/api/images/{image_id}").json()["history"]


def test_the_page_posts_what_it_saw_and_a_stale_key_changes_nothing(client):
    add_class(client, "shirt")
    add_class(client, "coat")
    ids = upload_fmnist(client, 4)
    page = client.get("/label")                                   # shows ids[0], unlabelled
    assert _seen(page.text) == ""
    label(client, ids[0], "coat", annotator="tab a")              # the other tab labels it meanwhile
    r = client.post(f"/label/{ids[0]}", data={"class": "shirt", "annotator": "tab b", "seen_event": "none"})
    assert r.status_code == 409
    assert r.json() == {"detail": f"image {ids[0]} was labelled 'coat' meanwhile (in another tab or by someone "
                                  "else); your key changed nothing", "stale": True, "remaining": 3}
    assert [e["annotator"] for e in _events(client, ids[0])] == ["tab a"]
    # A view that saw the current event saves as before, and the next stage carries the event it shows.
    current = _events(client, ids[0])[-1]["id"]
    r = client.post(f"/label/{ids[0]}", data={"class": "shirt", "seen_event": str(current)})
    assert r.status_code == 200 and _seen(r.text) == ""
    assert client.get(f"/api/images/{ids[0]}").json()["label"]["class"] == "shirt"
    # Without the field (an older page, a script) nothing is checked.
    assert client.post(f"/label/{ids[0]}", data={"class": "coat"}).status_code == 200
    # A relabel page (image= a labelled one) carries that image's current event.
    now = _events(client, ids[0])[-1]["id"]
    assert _seen(client.get(f"/label/stage?image={ids[0]}").text) == str(now)
    # An undo back to unlabelled is a change too: a view that saw the label is stale afterwards.
    client.post(f"/api/images/{ids[0]}/labels/undo", json={"event": now})
    r = client.post(f"/label/{ids[0]}", data={"class": "coat", "seen_event": str(now)})
    assert r.status_code == 409 and f"image {ids[0]} was labelled 'shirt' meanwhile" in r.json()["detail"]
    assert client.post(f"/label/{ids[0]}", data={"class": "coat", "seen_event": "x"}).status_code == 422


def test_undone_to_unlabelled_says_so(client):
    add_class(client, "shirt")
    ids = upload_fmnist(client, 2)
    first = label(client, ids[1], "shirt")
    undo = client.post(f"/api/images/{ids[1]}/labels/undo", json={"event": first["id"]}).json()
    r = client.post(f"/label/{ids[1]}", data={"class": "shirt", "seen_event": str(first["id"])})
    assert r.status_code == 409
    assert r.json()["detail"].startswith(f"image {ids[1]} was unlabelled meanwhile")
    assert r.json()["remaining"] == 2
    r = client.post(f"/label/{ids[1]}", data={"class": "shirt", "seen_event": str(undo["id"])})
    assert r.status_code == 200


def test_the_label_api_checks_seen_event_only_when_given(client):
    add_class(client, "shirt")
    add_class(client, "coat")
    ids = upload_fmnist(client, 3)
    url = f"/api/images/{ids[0]}/labels"
    made = client.post(url, json={"class": "coat", "seen_event": None})          # unlabelled, as seen
    assert made.status_code == 201
    r = client.post(url, json={"class": "shirt", "seen_event": None})             # stale: it is a coat now
    assert r.status_code == 409
    assert r.json()["detail"] == (f"image {ids[0]} was labelled 'coat' meanwhile (in another tab or by someone "
                                  "else); your key changed nothing")
    assert client.post(url, json={"class": "shirt", "seen_event": made.json()["id"]}).status_code == 201
    assert client.post(url, json={"class": "coat"}).status_code == 201             # no field: as before
    assert [e["class"] for e in _events(client, ids[0])] == ["coat", "shirt", "coat"]
    assert client.post(f"/api/images/{ids[-1] + 100}/labels", json={"class": "coat", "seen_event": None}).status_code == 404


def test_an_audit_is_not_checked_so_it_never_tells_the_hidden_label(client):
    add_class(client, "shirt")
    ids = upload_fmnist(client, 2)
    label(client, ids[0], "shirt")
    r = client.post(f"/label/{ids[0]}", data={"class": "shirt", "queue": "audit", "seen_event": "none"})
    # (no audit is waiting for it here: the audit's own refusal, which names no class)
    assert r.status_code == 409 and "stale" not in r.json() and "shirt" not in r.json()["detail"]
