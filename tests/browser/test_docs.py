"""/docs works with no internet: Swagger UI from static/vendor, under the CSP, documenting each taxonomy operation."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from tests.browser.test_login import login_server  # noqa: F401  (a fixture)
from tests.logins import PASSWORD

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


def test_try_it_out_as_the_signed_in_user(login_server, page):  # noqa: F811  (the imported fixture)
    """With logins required, a change sent from /docs carries the session's CSRF token and is signed by the user."""
    base, _, _ = login_server
    page.goto(f"{base}/login?next=%2Fdocs")
    page.fill('input[name="name"]', "root")
    page.fill('input[name="password"]', PASSWORD)
    page.press('input[name="password"]', "Enter")
    page.wait_for_url(f"{base}/docs")
    block = page.locator(".opblock-post", has=page.locator('[data-path="/api/taxonomy/changes"]'))
    block.locator(".opblock-summary").click()
    block.locator(".try-out__btn").click()
    block.locator(".examples-select select").first.select_option(label="Add a class")
    block.locator(".execute").click()
    status = block.locator(".live-responses-table tbody .response-col_status")
    status.first.wait_for()
    assert status.first.inner_text().strip() == "201"
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    versions = httpx.get(f"{base}/api/taxonomy/versions", cookies=cookies).json()["items"]
    assert [(v["message"], v["author"]) for v in versions] == [("add Sneaker", "root")]
