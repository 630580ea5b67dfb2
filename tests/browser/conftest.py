"""A real `loupe serve` process and Debian's chromium driven by Playwright."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.servers import running_server, server_errors

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


@pytest.fixture
def live_server(tmp_path):
    """`loupe serve` on a free port with its own data dir; yields (base_url, data_dir)."""
    data = tmp_path / "data"
    log = tmp_path / "server.log"
    with running_server(data, env={"LOUPE_TOKEN": ""}, log=log) as base:
        yield base, data
    # Every journey fails on a server error, whether or not the page showed it.
    assert not server_errors(log), "server errors:\n" + "\n".join(server_errors(log)[:20])


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: the test set-up installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def console_allow() -> list[str]:
    """Regular expressions of console errors a test provokes on purpose (e.g. an expected 409)."""
    return []


def watch(pg, errors: list[str], allow: list[str]) -> None:
    """Collect what makes a journey fail: a script error, a console error, a CSP report, a 5xx answer."""
    pg.on("pageerror", lambda e: errors.append(f"page error: {e}"))

    def on_console(m):
        # Chromium reports what the Content-Security-Policy blocked (an inline handler, eval) on the console.
        if "Content Security Policy" in m.text:
            errors.append(f"CSP: {m.text}")
        elif m.type == "error" and not any(re.search(a, m.text) for a in allow):
            errors.append(f"console error: {m.text}")

    pg.on("console", on_console)
    pg.on("response", lambda r: r.status >= 500 and errors.append(f"HTTP {r.status} from {r.url}"))


@pytest.fixture
def page(browser, console_allow):
    context = browser.new_context(viewport={"width": 1300, "height": 850})
    pg = context.new_page()
    errors: list[str] = []
    watch(pg, errors, console_allow)
    yield pg
    context.close()
    assert not errors, f"JavaScript errors, console errors, CSP violations or 5xx answers: {errors}"
