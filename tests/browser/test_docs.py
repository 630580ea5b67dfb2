"""/docs works with no internet: Swagger UI from static/vendor, under the CSP, documenting each taxonomy operation."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.browser


def test_docs_render_every_operation_offline(live_server, page):
    base, _ = live_server
    here = urlsplit(base).netloc
    elsewhere: list[str] = []

    def offline(route):  # as with no network: anything not from this server fails, and is noted
        if urlsplit(route.request.url).netloc == here or route.request.url.startswith("data:"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", offline)
    response = page.goto(f"{base}/docs")
    assert "script-src 'self';" in response.headers["content-security-policy"]
    page.wait_for_selector(".opblock-summary-path")
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert len(paths) > 30 and "/api/taxonomy/changes" in paths

    block = page.locator(".opblock-post", has=page.locator('[data-path="/api/taxonomy/changes"]'))
    block.locator(".opblock-summary").click()
    examples = block.locator(".examples-select select")
    examples.wait_for()
    options = examples.locator("option").all_inner_texts()
    for summary in ("Add a class", "Merge two classes into a new one", "Split a class", "Undo a version (here: the merge)",
                    "Give a class another key"):
        assert summary in options
    examples.select_option(label="Merge two classes into a new one")
    assert '"into": "Shoe"' in block.locator(".body-param__example, .microlight").first.inner_text()
    assert not elsewhere, f"/docs reached outside the server: {elsewhere}"
