"""Every page that htmx polls or swaps answers its htmx request with the fragment the page expects.

A page asks for its own URL with `HX-Request: true` and swaps the answer in by
an id: `hx-select="#queue"` picks #queue out of the answer; `hx-target="#grid"`
(innerHTML) puts the answer inside #grid; a poll with `hx-swap="outerHTML"` and
no target replaces itself. The job page's live block rendered alone once lost
its template's macro import (a 500 every 2 s), and the jobs poll selected an id
its fragment lacked (the queue vanished): both are caught here, for jobs that
are queued, running and finished.
"""

from __future__ import annotations

import ast
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from app.training import jobs
from app.training.spec import Result
from app.training.worker import prediction_rows
from app.web.templating import TEMPLATES_DIR
from tests.factories import labelled_snapshot, upload_fmnist

HTML = {"Accept": "text/html"}
HX = {**HTML, "HX-Request": "true"}
LONG = "a class with a name far too long for any column head"


class Swaps(HTMLParser):
    """The htmx requests a page makes (hx-get/hx-post) and the ids of all its elements, in document order."""

    def __init__(self):
        super().__init__()
        self.swaps: list[dict] = []
        self.ids: list[str] = []
        self.roots: list[dict] = []  # top-level elements (the fragment's roots)
        self.depth = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        if self.depth == 0:
            self.roots.append(a)
        if tag not in ("input", "br", "img", "meta", "link", "hr", "line", "circle", "polyline", "path", "rect"):
            self.depth += 1
        if a.get("hx-get") or a.get("hx-post"):
            self.swaps.append(a)

    def handle_endtag(self, tag):
        if tag not in ("input", "br", "img", "meta", "link", "hr", "line", "circle", "polyline", "path", "rect"):
            self.depth -= 1

    def handle_startendtag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])


def parse(html: str) -> Swaps:
    p = Swaps()
    p.feed(html)
    return p


def check_fragments(client, url: str, path: str | None = None) -> tuple[str, str]:
    """Fetch `url` as a page and as htmx; assert each swap that asks for `path` (default: url's path) gets what
    it needs. Returns (page, fragment)."""
    path = path or url.split("?")[0]
    page = client.get(url, headers=HTML)
    assert page.status_code == 200, (url, page.text[:500])
    fragment = client.get(url, headers=HX)
    assert fragment.status_code == 200, (url, fragment.text[:500])
    assert "<html" not in fragment.text and "<nav" not in fragment.text, f"{url}: a whole page, not a fragment"
    assert all("HX-Request" in r.headers.get("vary", "") for r in (page, fragment))   # caches keep them apart
    full, part = parse(page.text), parse(fragment.text)
    own = [s for s in full.swaps if (s.get("hx-get") or s.get("hx-post")).split("?")[0] == path]
    assert own, f"{url}: no htmx request back to {path} on the page"
    for s in own:
        select, target, swap = s.get("hx-select"), s.get("hx-target"), s.get("hx-swap", "innerHTML")
        if select:
            assert select.startswith("#") and select[1:] in part.ids, f"{url}: the fragment has no {select}"
            if swap == "outerHTML" and not target:
                assert select[1:] == s.get("id"), f"{url}: {select} replaces an element with another id"
        elif target:
            assert target.startswith("#") and target[1:] in full.ids, f"{url}: the page has no {target}"
            if swap == "outerHTML":
                assert part.roots and part.roots[0].get("id") == target[1:], f"{url}: fragment root is not {target}"
            else:  # innerHTML: the fragment is what goes inside, so it must not bring a second #target
                assert target[1:] not in part.ids, f"{url}: {target} would be nested in itself"
                assert fragment.text.strip(), f"{url}: an empty fragment would blank {target}"
        else:  # the element swaps itself: the fragment must be that element
            assert swap == "outerHTML", f"{url}: a self-swap by {swap} nests the element in itself"
            assert part.roots and part.roots[0].get("id") == s.get("id"), f"{url}: fragment root is not #{s.get('id')}"
    return page.text, fragment.text


def polls(html: str) -> bool:
    return "hx-trigger=\"every" in html


@pytest.fixture
def world(client, db):
    """A snapshot, a class with a long name, and three jobs: one finished (with epochs, metrics and predictions),
    one running (with epochs), one queued."""
    snap = labelled_snapshot(client, 12, classes=3, folds=2)
    r = client.post("/api/snapshots", json={"name": "again", "split": {"val": 0.2, "seed": 0, "folds": 2}})
    assert r.status_code == 201, r.text   # a second one: the snapshot page then offers its htmx comparison
    assert client.post("/api/taxonomy/changes", json={"op": "add", "name": LONG}).status_code == 201
    new = upload_fmnist(client, 2, start=500, source="new")
    classes = client.get(f"/api/snapshots/{snap['id']}").json()["classes"]
    ids = [client.post("/api/jobs", json={"snapshot": snap["id"], "config": {"epochs": 2}}).json()["id"]
           for _ in range(3)]
    done, running, queued = ids
    with db.writing() as s:
        assert jobs.claim(s, "w1").id == done
    for stage in ("fold 1/2", "fold 2/2", "final"):
        for epoch in (1, 2):
            with db.writing() as s:
                jobs.add_epoch(s, done, stage, epoch, {"train_loss": 1.0 / epoch, "val_loss": 1.2 / epoch,
                                                       "val_accuracy": 0.4 * epoch})
    result = Result(classes=[*classes[:2], LONG], out_of_sample={}, suggestions={new[0]: [0.5, 0.3, 0.2]},
                    metrics={"accuracy": 0.8, "macro_f1": 0.7, "ece": 0.05, "per_source": {"fmnist": 0.8},
                             "per_tag": {}, "per_class": {}, "confusion": [[3, 1, 0], [0, 4, 0], [1, 0, 3]]},
                    final={}, model_path=None, device="cpu")
    with db.writing() as s:
        jobs.add_log(s, done, "x" * 300)
        assert jobs.finish(s, done, "w1", status="succeeded", result=result,
                           predictions=prediction_rows(result, [], None))
    with db.writing() as s:
        assert jobs.claim(s, "w2").id == running
        jobs.add_epoch(s, running, "fold 1/2", 1, {"train_loss": 0.9, "val_loss": None, "val_accuracy": None})
    return {"snap": snap, "done": done, "running": running, "queued": queued}


def test_job_page_fragments_while_queued_running_and_finished(client, world):
    for key in ("queued", "running"):
        page, fragment = check_fragments(client, f"/jobs/{world[key]}")
        assert polls(page) and polls(fragment), key
    # Finished: the last poll's answer is still #live (it replaces the polling element) and polls no more.
    page = client.get(f"/jobs/{world['done']}", headers=HTML)
    fragment = client.get(f"/jobs/{world['done']}", headers=HX)
    assert page.status_code == fragment.status_code == 200
    assert parse(fragment.text).roots[0].get("id") == "live" and "<nav" not in fragment.text
    assert not polls(page.text) and not polls(fragment.text)
    assert "out-of-sample accuracy" in fragment.text and "epoch" in fragment.text and "<svg" in fragment.text


def test_jobs_list_fragment_keeps_the_queue_and_stops_polling_when_idle(client, db, world):
    page, fragment = check_fragments(client, "/jobs")
    assert polls(fragment) and all(f"/jobs/{world[k]}" in fragment for k in ("queued", "running", "done"))
    for key in ("queued", "running"):
        assert client.post(f"/api/jobs/{world[key]}/cancel").status_code == 200
    with db.writing() as s:   # the worker that ran it notices the cancel and stops
        assert jobs.finish(s, world["running"], "w2", status="cancelled")
    page, fragment = client.get("/jobs", headers=HTML).text, client.get("/jobs", headers=HX).text
    assert not polls(page) and not polls(fragment)   # nothing waits or runs: no more requests every 3 s
    assert parse(fragment).roots[0].get("id") == "queue" and f"/jobs/{world['done']}" in fragment


def test_embed_and_analyse_jobs_render_queued_running_and_finished(client, db):
    """Jobs without a snapshot or accuracy (embed, analyse) on the job page and in the queue: no 500 for a
    missing snapshot or a metrics dict of another shape."""
    with db.writing() as s:
        embed = jobs.create_embed_job(s, {"backbone": "resnet18"}).id
    check_fragments(client, f"/jobs/{embed}")
    with db.writing() as s:
        assert jobs.claim(s, "w").id == embed
    check_fragments(client, f"/jobs/{embed}")
    with db.writing() as s:
        assert jobs.finish(s, embed, "w", status="succeeded", artifacts={"embeddings": "e.npy", "embedded": 3},
                           metrics={"embedded": 3, "seconds": 1.5}, message="done: 3 images embedded")
        analyse = jobs.create_analyse_job(s, {}).id
    page, fragment = check_fragments(client, "/jobs")
    assert f"analyse <a href=\"/jobs/{embed}\">#{embed}</a>" in fragment and "embed resnet18" in fragment
    with db.writing() as s:
        assert jobs.claim(s, "w").id == analyse
        assert jobs.finish(s, analyse, "w", status="succeeded", artifacts={"space": embed, "files": {}},
                           metrics={"outliers_flagged": 2, "seconds": {"knn": 0.1}})
    text = client.get(f"/jobs/{embed}", headers=HTML).text
    assert "pretrained resnet18" in text and "embedded" in text and "out-of-sample accuracy" not in text
    text = client.get(f"/jobs/{analyse}", headers=HX).text
    assert f"/map?job={analyse}" in text and "outliers flagged" in text
    # The jobs page's buttons queue the same kinds; an unknown one is a 404, not a job.
    r = client.post("/jobs/analyse", headers=HTML, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/jobs/{analyse + 1}"
    assert client.post("/jobs/nonsense", headers=HTML).status_code == 404


def test_the_search_page_polls_its_results_until_the_worker_has_answered(client, db):
    """/similar?search=N: the results block swaps itself while the search waits or runs, then shows the
    neighbours with their labels (or the error) and stops."""
    from app.db.models import Job

    def search(**fields) -> int:
        with db.writing() as s:
            job = Job(kind="search", notes=[], artifacts={}, message="waiting for a worker",
                      config={"space": space, "k": 3, "query": "queries/q.png", "filename": f"{LONG}.png"},
                      **{"status": "queued", **fields})
            s.add(job)
            s.commit()
            return job.id

    with db.writing() as s:
        row = Job(kind="embed", status="succeeded", config={}, notes=[],
                  artifacts={"embeddings": "e.npy", "backbone": "resnet18", "embedded": 3})
        s.add(row)
        s.commit()
        space = row.id
    done = search()
    _, fragment = check_fragments(client, f"/similar?search={done}")
    assert "searching…" in fragment and "waiting for a worker" in fragment
    with db.writing() as s:
        assert jobs.claim(s, "w").id == done
    check_fragments(client, f"/similar?search={done}")
    with db.writing() as s:
        assert jobs.finish(s, done, "w", status="succeeded", artifacts={}, metrics={"items": [
            {"image": 7, "distance": 0.01, "class": LONG}, {"image": 8, "distance": 0.2, "class": None}]})
    fragment = client.get(f"/similar?search={done}", headers=HX).text
    assert not parse(fragment).swaps and parse(fragment).roots[0].get("id") == "search-results"
    assert fragment.count('class="similar-label"') == 2 and LONG in fragment and "unlabelled" in fragment
    failed = search(status="failed", error="the uploaded image q.png cannot be read")
    fragment = client.get(f"/similar?search={failed}", headers=HX).text
    assert not parse(fragment).swaps and 'class="error"' in fragment and "cannot be read" in fragment
    assert client.get(f"/similar?search={space}", headers=HTML).status_code == 404  # not a search


def test_other_pages_with_blocks_answer_htmx_with_their_fragment(client, world):
    check_fragments(client, "/browse?status=unlabelled", "/browse")
    snap = world["snap"]["id"]
    check_fragments(client, f"/snapshots/{snap}?diff_with={snap + 1}", f"/snapshots/{snap}")
    for url, wrapper in (("/taxonomy", "editor"), ("/quality", "quality")):   # their forms post and swap
        page = client.get(url, headers=HTML).text
        fragment = client.get(url, headers=HX)
        assert fragment.status_code == 200 and f'id="{wrapper}"' in page
        assert f'id="{wrapper}"' not in fragment.text and "<nav" not in fragment.text and fragment.text.strip()


def test_stage_fragments_of_the_keyboard_pages(client, world):
    """/label and /review swap the inside of #stage with what app.js fetches from their /stage URLs."""
    for page_url, stage_url, marker in (("/label", "/label/stage", "data-image-id"),
                                        ("/review", "/review/stage", None)):
        page = client.get(page_url, headers=HTML)
        stage = client.get(stage_url, headers=HTML)
        assert page.status_code == stage.status_code == 200, (stage_url, stage.text[:300])
        assert 'id="stage"' in page.text and 'id="stage"' not in stage.text and "<nav" not in stage.text
        assert stage.text.strip() and (marker is None or marker in stage.text)


def test_every_polling_or_block_rendering_page_is_covered_here():
    """A page template that polls, or that a route renders one block of, must be added to the tests above."""
    covered = {"job.html", "jobs.html", "browse.html", "snapshot.html", "taxonomy.html", "quality.html",
               "label.html", "review.html", "similar.html"}
    polling = {p.name for p in (Path(TEMPLATES_DIR) / "pages").glob("*.html") if 'hx-trigger="every' in p.read_text()}
    routes = Path(TEMPLATES_DIR).parent / "app" / "web" / "routes"
    blocks = set()
    for py in routes.glob("*.py"):   # render(request, "pages/x.html", ..., block=...) and render_block(...)
        for call in ast.walk(ast.parse(py.read_text())):
            name = getattr(getattr(call, "func", None), "id", None)
            if not isinstance(call, ast.Call) or name not in ("render", "render_block"):
                continue
            pages = [a.value for a in call.args if isinstance(a, ast.Constant) and str(a.value).startswith("pages/")]
            if pages and (name == "render_block" or any(k.arg == "block" for k in call.keywords)):
                blocks.add(pages[0].removeprefix("pages/"))
    assert {"job.html", "jobs.html"} <= polling and {"job.html", "browse.html"} <= blocks   # the scans work
    assert polling | blocks <= covered, f"pages without a fragment test: {sorted((polling | blocks) - covered)}"


def test_job_page_reads_for_people(client, world):
    html = client.get(f"/jobs/{world['done']}", headers=HTML).text
    # Both charts have titled axes, and one line per stage (fold 1/2, fold 2/2, final) with a legend.
    assert html.count('class="axis-title"') == 4
    assert re.findall(r'class="axis-title"[^>]*>([^<]+)<', html) == ["epoch", "loss", "epoch", "accuracy"]
    for stage in ("fold 1/2", "fold 2/2", "final"):
        assert f">{stage}</span>" in html
    # The long class name is cut in the matrix heads, whole in their tooltips.
    assert f'title="{LONG}"' in html and f">{LONG}</span>" not in html and 'class="col-head"' in html
