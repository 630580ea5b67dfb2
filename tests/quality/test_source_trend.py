"""Out-of-sample accuracy per source, one point per snapshot, on /quality and in the API."""

from __future__ import annotations

import re

from tests.factories import finish_train, labelled_snapshot, upload_fmnist


def test_per_source_accuracy_over_two_snapshots_shows_the_gap_closing(client, db):
    r = client.get("/api/quality/sources")
    assert r.status_code == 200 and r.json() == {"sources": [], "points": []}
    assert "No finished train job yet" in client.get("/quality").text

    first = labelled_snapshot(client, 12, classes=3, folds=2, name="week 1", source="stock")
    upload_fmnist(client, 2, start=3000, source="web")
    finish_train(client, db, first, per_source={"stock": 0.90, "web": 0.40}, suggestions={})
    # A second job on the same snapshot replaces the first in the trend: the snapshot's newest measurement.
    redo = finish_train(client, db, first, per_source={"stock": 0.94, "web": 0.61}, suggestions={})
    second = labelled_snapshot(client, 12, classes=3, folds=2, name="week 2", source="web", start=500)
    later = finish_train(client, db, second, per_source={"stock": 0.93, "web": 0.85, "phone": 0.7}, suggestions={})

    trend = client.get("/api/quality/sources").json()
    assert trend["sources"] == ["phone", "web", "stock"]           # the weakest in the newest snapshot first
    assert [(p["snapshot_name"], p["job"]) for p in trend["points"]] == [("week 1", redo), ("week 2", later)]
    assert trend["points"][0]["accuracy"] == {"stock": 0.94, "web": 0.61}
    assert [round(p["gap"], 2) for p in trend["points"]] == [0.33, 0.23]
    assert trend["points"][0]["images"] == 12 and trend["points"][1]["images"] == 24
    assert client.get("/api/quality").json()["source_trend"] == trend

    html = client.get("/quality").text
    section = html[html.index("Out-of-sample accuracy per source"):]
    section = section[:section.index("</section>")]
    assert section.count("<polyline") == 3                          # one line per source
    rows = re.findall(r"<tr><td>(\d+)</td>.*?</tr>", section, flags=re.S)
    assert rows == ["1", "2"]
    cells = re.findall(r'<td class="num">([^<]+)</td>', section)
    assert cells == ["—", "61%", "94%", "33%", "70%", "85%", "93%", "23%"]   # phone, web, stock, gap per row
