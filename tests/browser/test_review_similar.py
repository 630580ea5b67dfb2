"""Similar images in a real browser, with a model trained by a real worker on the live server's data: on an image
page select two similar thumbnails, label them as one bulk action and undo it; on /review an outlier flag shows
its neighbours, a neighbour is labelled from the strip by keyboard alone, and the flag is decided and undone;
a duplicate flag settled by labelling its twin from the strip closes itself."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests import fmnist
from tests.embeddings import strays
from tests.factories import add_class, label, labelled_snapshot, near_duplicates, upload
from tests.workers import FAST, finished, start_worker, stop, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # a real train job and its analysis first: ~40 s


def _trained(client, data) -> tuple[dict[int, str], list[int]]:
    """90 labelled Fashion-MNIST images of 3 classes, 3 noise images, two near-duplicates labelled differently (a
    duplicate flag); a train job and its analysis, finished. Returns ({id: class} but the twins, the twins)."""
    for name in fmnist.CLASSES[:2]:
        add_class(client, name)
    twins = [x["id"] for x in upload(client, near_duplicates(2), "copies")["imported"]]
    for image_id, name in zip(twins, fmnist.CLASSES[:2]):
        label(client, image_id, name)
    assert client.post("/api/quality/duplicates").status_code == 200
    assert client.get("/api/flags", params={"kind": "duplicate"}).json()["total"] == 2
    snap = labelled_snapshot(client, 90, classes=3, folds=2)
    upload(client, strays.noise(3), "scrape")
    train = client.post("/api/jobs", json={"snapshot": snap["id"], "config": {**FAST, "epochs": 2}}).json()["id"]
    worker = start_worker(data)
    try:
        assert wait_for(client, train, finished)["status"] == "succeeded"

        def analyses() -> list[dict]:  # queued by the worker right after the train job finished
            return [j for j in client.get("/api/jobs").json()["items"] if j["kind"] == "analyse"]

        wait_for(client, train, lambda _: analyses(), timeout=30)
        analysis = analyses()[0]
        assert wait_for(client, analysis["id"], finished)["status"] == "succeeded"
        wait_for(client, analysis["id"], lambda _: client.get("/api/flags", params={"kind": "outlier"}).json()["total"],
                 timeout=30)
    finally:
        stop(worker)
    items = client.get(f"/api/snapshots/{snap['id']}/items").json()["items"]
    return {it["image"]: it["class"] for it in items if it["image"] not in twins}, twins


def _label_of(client, image_id: int) -> str | None:
    lab = client.get(f"/api/images/{image_id}").json()["label"]
    return lab["class"] if lab else None


def test_label_similar_images_from_the_strips_and_review_an_outlier(live_server, page, tmp_path):
    base, data = live_server
    client = httpx.Client(base_url=base, timeout=60)
    labelled, twins = _trained(client, data)
    page.add_init_script("localStorage.setItem('loupe.annotator', 'ana')")

    # The image page: pick two neighbours, label them as a class they do not have, then undo.
    image = sorted(labelled)[0]
    page.goto(f"{base}/images/{image}")
    items = page.locator(".similar-strip .strip-item")
    expect(items).to_have_count(12)
    shown = [int(items.nth(i).get_attribute("data-id")) for i in range(12)]
    at = [n for n, i in enumerate(shown) if i not in twins][:3:2]  # the twins' conflict is for the end
    picks = [shown[n] for n in at]
    before = [_label_of(client, i) for i in picks]
    target = next(c for c in fmnist.CLASSES[:3] if c not in before)
    apply = page.locator(".strip-bulk .strip-apply")
    items.nth(at[0]).locator(".strip-pick").click()      # the caption toggles the checkbox
    items.nth(at[1]).locator("input").check()
    expect(page.locator(".strip-item.selected")).to_have_count(2)
    expect(apply).to_have_text("Label 2 selected")
    page.screenshot(path=str(tmp_path / "image-strip.png"), full_page=True)
    assert apply.is_disabled()                           # no class chosen yet
    page.select_option(".strip-bulk select", label=target)
    apply.click()
    expect(page.locator(".strip-confirm")).to_be_visible()
    assert page.inner_text(".strip-confirm-text").startswith("Relabel 2 images")
    page.click(".strip-yes")
    expect(page.locator(".strip-done-text")).to_contain_text("done")
    expect(page.locator("[data-strip][data-refreshed='1']")).to_have_count(1)
    assert [_label_of(client, i) for i in picks] == [target, target]
    assert client.get(f"/api/images/{picks[0]}").json()["history"][-1]["kind"] == "bulk"
    expect(items.nth(at[0]).locator(".similar-label")).to_have_text(target)
    expect(page.locator(".strip-item.selected")).to_have_count(0)
    page.click(".strip-undo")
    expect(page.locator("[data-strip][data-refreshed='2']")).to_have_count(1)
    assert [_label_of(client, i) for i in picks] == before
    expect(items.nth(at[0]).locator(".similar-label")).to_have_text(before[0] or "unlabelled")

    # /review: the top outlier flag with the neighbours its analysis stored.
    flag = next(f for f in client.get("/api/flags", params={"kind": "outlier"}).json()["items"]
                if f["image"] not in twins)
    page.goto(f"{base}/review?kind=outlier&flag={flag['id']}")
    page.wait_for_selector(f'#reviewer[data-armed="{flag["id"]}"]', timeout=5000)
    strip = page.locator("#stage .strip-item")
    expect(strip).to_have_count(len(flag["details"]["neighbours"]))
    assert [int(strip.nth(i).get_attribute("data-id")) for i in range(strip.count())] == flag["details"]["neighbours"]
    expect(page.locator("#outlier-text")).to_contain_text("times the usual distance")
    page.screenshot(path=str(tmp_path / "review-outlier.png"), full_page=True)

    # Keyboard alone: Space selects a neighbour, the class picker and Enter label it; Enter there is not "keep".
    at = next(n for n, i in enumerate(flag["details"]["neighbours"]) if i not in twins)
    neighbour = flag["details"]["neighbours"][at]
    was = _label_of(client, neighbour)
    other = next(c for c in fmnist.CLASSES[:3] if c != was)
    strip.nth(at).locator("input").focus()
    page.keyboard.press("Space")
    expect(page.locator("#stage .strip-item.selected")).to_have_count(1)
    page.focus("#stage .strip-bulk select")
    page.select_option("#stage .strip-bulk select", label=other)
    page.focus("#stage .strip-apply")
    page.keyboard.press("Enter")
    expect(page.locator("#stage .strip-confirm")).to_be_visible()
    page.keyboard.press("Enter")                         # Confirm has the focus
    expect(page.locator("#stage [data-strip][data-refreshed='1']")).to_have_count(1)
    assert _label_of(client, neighbour) == other
    assert client.get(f"/api/flags/{flag['id']}").json()["status"] == "open"   # no decision was taken

    # The flag itself: x excludes, u takes it back.
    page.locator("#current").click()                     # focus off the strip's controls
    page.keyboard.press("x")
    page.wait_for_selector(f'#stage [data-flag-id]:not([data-flag-id="{flag["id"]}"])', timeout=5000)
    decided = client.get(f"/api/flags/{flag['id']}").json()
    assert decided["status"] == "resolved" and decided["resolution"] == "exclude"
    assert client.get(f"/api/images/{flag['image']}").json()["excluded"] is True
    page.keyboard.press("u")
    page.wait_for_selector(f'#reviewer[data-armed="{flag["id"]}"]', timeout=5000)
    back = client.get(f"/api/flags/{flag['id']}").json()
    assert back["status"] == "open" and back["details"]["undone"][0]["resolution"] == "exclude"
    assert client.get(f"/api/images/{flag['image']}").json()["excluded"] is False

    # A duplicate flag: labelling its twin from the strip like the flagged image ends the conflict, so the flag
    # closes itself and the page says why and moves on.
    dup = client.get("/api/flags", params={"kind": "duplicate"}).json()["items"][0]
    twin = next(i for i in dup["details"]["group"] if i != dup["image"])
    page.goto(f"{base}/review?kind=duplicate&flag={dup['id']}")
    page.wait_for_selector(f'#reviewer[data-armed="{dup["id"]}"]', timeout=5000)
    page.locator(f'#stage .strip-item[data-id="{twin}"] input').check()
    page.select_option("#stage .strip-bulk select", label=dup["given"])
    page.click("#stage .strip-apply")
    page.click("#stage .strip-yes")
    expect(page.locator("#toast")).to_contain_text(f"flag #{dup['id']} closed itself: the near-duplicates' labels")
    page.wait_for_selector("text=Nothing left to review", timeout=5000)
    assert client.get(f"/api/flags/{dup['id']}").json()["status"] == "cancelled"
    client.close()
