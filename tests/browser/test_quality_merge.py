"""The quality page's "merge into" button asks first (a data-confirm form, no inline script) and merges on yes."""

from __future__ import annotations

import httpx
import pytest

from tests.quality.helpers import planted_job_on_server

pytestmark = pytest.mark.browser


def test_merge_from_the_quality_page_asks_first(live_server, page):
    base, data = live_server
    with httpx.Client(base_url=base, timeout=60) as client:
        # The model takes three images of class 0 for class 1: the most-confused pair is (0, 1).
        planted_job_on_server(client, data, n=24, folds=3,
                              wrong=lambda ids, labels: {i: 1 for i in [j for j in ids if labels[j] == 0][:3]})
        version = client.get("/api/taxonomy").json()["version"]

        answers: list[str] = []
        page.on("dialog", lambda d: (answers.append(d.message), d.accept() if len(answers) > 1 else d.dismiss()))
        page.goto(f"{base}/quality")
        button = page.locator(".pair-actions button").first
        into = button.inner_text().removeprefix("merge into ")
        button.click()   # "no": nothing happens
        page.wait_for_timeout(300)
        assert len(answers) == 1 and answers[0].startswith("Merge ") and into in answers[0]
        assert client.get("/api/taxonomy").json()["version"] == version

        with page.expect_navigation():
            page.locator(".pair-actions button").first.click()   # "yes": the form posts, a new version merges
        taxonomy = client.get("/api/taxonomy").json()
        assert taxonomy["version"] == version + 1
        assert len(taxonomy["classes"]) == 2 and into in {c["name"] for c in taxonomy["classes"]}
