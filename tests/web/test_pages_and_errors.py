"""Pages render, errors are clear (JSON for the API, a page for browsers), never a traceback."""

from __future__ import annotations

from tests.factories import add_class, label, upload_fmnist

HTML = {"Accept": "text/html"}


def test_pages_render_with_data(client):
    add_class(client, "shirt", description="Buttons and a collar")
    ids = upload_fmnist(client, 3)
    label(client, ids[0], "shirt", tags=["dark"], annotator="ana")
    for path, expect in [
        ("/", "fmnist"), ("/browse", "3 images"), ("/browse?class=shirt", "1 image"),
        (f"/images/{ids[0]}", "ana"), ("/taxonomy", "Buttons and a collar"), ("/label", f"#{ids[1]}"),
    ]:
        r = client.get(path, headers=HTML)
        assert r.status_code == 200, path
        assert expect in r.text, path
    empty_form = "/browse?status=&source=&class=&tag=&min_confidence=&max_confidence="
    assert client.get(empty_form, headers=HTML).status_code == 200
    assert client.get("/api/images?min_confidence=high").status_code == 422
    grid = client.get("/browse?status=unlabelled", headers={**HTML, "HX-Request": "true"}).text
    assert "<nav" not in grid and grid.count('class="tile"') == 2


def test_errors_are_json_for_api_and_pages_for_browsers(client):
    r = client.get("/api/images/12345")
    assert r.status_code == 404 and r.json() == {"detail": "no image 12345"}
    r = client.get("/images/12345", headers=HTML)
    assert r.status_code == 404 and "no image 12345" in r.text and "Traceback" not in r.text
    r = client.get("/api/images/abc")
    assert r.status_code == 422 and "image_id" in r.json()["detail"]
    r = client.post("/api/taxonomy/changes", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422

