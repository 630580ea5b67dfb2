"""Diff two snapshots; the snapshots pages (list, create form, snapshot, live health) render real numbers."""

from __future__ import annotations

from tests.snapshots.conftest import freeze_change_freeze, items

HTML = {"Accept": "text/html"}


def test_diff_reports_added_removed_relabelled_and_moved(labelled, db):
    client = labelled.client
    changed = freeze_change_freeze(labelled, db)
    old, new, gone, relabelled, new_id = changed.old, changed.new, changed.gone, changed.relabelled, changed.added

    a = {x["image"]: x for x in items(client, old["id"])}
    b = {x["image"]: x for x in items(client, new["id"])}
    d = client.get(f"/api/snapshots/{old['id']}/diff/{new['id']}").json()
    assert d["added"] == [new_id] and d["removed"] == [gone]
    assert d["relabelled"] == [{"image": relabelled, "from": a[relabelled]["class"], "to": b[relabelled]["class"]}]
    moved = [{"image": i, "from": a[i]["split"], "to": b[i]["split"]} for i in sorted(a.keys() & b.keys())
             if a[i]["split"] != b[i]["split"]]
    assert d["moved"] == moved and moved  # another seed moves images between splits
    assert d["counts"]["added"] == 1 and d["counts"]["moved"] == len(moved)
    assert client.get(f"/api/snapshots/{old['id']}/diff/{old['id']}").status_code == 422
    assert client.get(f"/api/snapshots/{old['id']}/diff/999").status_code == 404

    html = client.get(f"/snapshots/{new['id']}?diff_with={old['id']}", headers={**HTML, "HX-Request": "true"}).text
    assert "+1 added" in html and "−1 removed" in html and "1 relabelled" in html and "<nav" not in html


def test_pages_show_the_report_and_the_form_creates_snapshots(labelled):
    client = labelled.client
    page = client.get("/snapshots", headers=HTML)
    assert page.status_code == 200 and "No snapshots yet" in page.text and 'value="studio"' in page.text

    r = client.post("/snapshots", data={"name": "from the form", "sources": ["web"], "exclude_excluded": "on",
                                        "val": "0.3", "folds": "3"}, headers=HTML, follow_redirects=False)
    assert r.status_code == 303
    snapshot_id = int(r.headers["location"].rsplit("/", 1)[1])
    meta = client.get(f"/api/snapshots/{snapshot_id}").json()
    assert meta["count"] == 30 and meta["filter"]["sources"] == ["web"] and meta["split"]["folds"] == 3

    page = client.get(f"/snapshots/{snapshot_id}", headers=HTML)
    assert page.status_code == 200
    assert 'data-metric="total">30<' in page.text and "Class balance" in page.text and meta["hash"] in page.text
    assert "Source mix per class" in page.text and "Labelling time" in page.text

    bad = client.post("/snapshots", data={"name": "from the form"}, headers=HTML)
    assert bad.status_code == 409 and "already exists" in bad.text and 'value="from the form"' in bad.text
    bad = client.post("/snapshots", data={"name": "x", "min_confidence": "lots"}, headers=HTML)
    assert bad.status_code == 422 and "min confidence must be a number" in bad.text

    live = client.get("/snapshots/live", headers=HTML)
    assert live.status_code == 200 and 'data-metric="total">90<' in live.text and "images in the library" in live.text
    listing = client.get("/snapshots", headers=HTML).text
    assert "from the form" in listing and 'href="/snapshots"' in listing
