"""The README's screenshots (docs/label.png, docs/review.png), made from the real pages so they stay current.

Fashion-MNIST images are labelled through the labelling page with its keys, a finished job on a labelled
snapshot flags a few likely mislabels, and both pages are photographed as a person sees them.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.factories import upload_fmnist
from tests.quality.helpers import planted_job_on_server

pytestmark = pytest.mark.browser

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _planted(ids: list[int], labels: dict[int, int]) -> dict[int, int]:
    """Three images the model takes for the next class: the review queue's flags."""
    return {ids[i]: (labels[ids[i]] + 1) % 3 for i in (2, 9, 17)}


def _showing(page, image_id: int) -> None:
    """The image is on screen and has been seen long enough for a decision key to act on it."""
    page.wait_for_selector(f'#labeller[data-armed="{image_id}"] #stage [data-image-id="{image_id}"]', timeout=5000)


def test_readme_screenshots(live_server, page):
    base, data = live_server
    with httpx.Client(base_url=base, timeout=60) as client:
        classes, _ = planted_job_on_server(client, data, n=24, folds=2, wrong=_planted)
        fresh = upload_fmnist(client, 8, start=3000, source="new batch")
        assert client.get("/api/flags", params={"kind": "mislabel"}).json()["items"]

    page.goto(f"{base}/label")
    page.keyboard.type("ana")            # the name dialog has focus on a first visit
    page.keyboard.press("Enter")
    keys = [page.get_attribute(f'.class-btn[data-name="{c}"]', "data-key") for c in classes]
    for image_id, key in zip(fresh[:3], keys):
        _showing(page, image_id)
        page.keyboard.press(key)
    _showing(page, fresh[3])
    page.keyboard.press("w")             # unsure, so the confidence row shows a choice
    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / "label.png"))
    con = sqlite3.connect(data / "loupe.db")
    labelled = {r[0] for r in con.execute("SELECT image_id FROM label_events WHERE annotator = 'ana'")}
    con.close()
    assert labelled == set(fresh[:3])

    page.goto(f"{base}/review")
    page.wait_for_selector("#stage [data-flag-id]", timeout=5000)
    flag = page.get_attribute("#stage [data-flag-id]", "data-flag-id")
    page.wait_for_selector(f'#reviewer[data-armed="{flag}"]', timeout=5000)
    page.screenshot(path=str(DOCS / "review.png"))

    for name in ("label.png", "review.png"):
        assert (DOCS / name).stat().st_size > 10_000, f"docs/{name} looks empty"
