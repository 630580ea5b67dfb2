"""A real `loupe serve` process and Debian's chromium driven by Playwright."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.servers import running_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


@pytest.fixture
def live_server(tmp_path):
    """`loupe serve` on a free port with its own data dir; yields (base_url, data_dir)."""
    data = tmp_path / "data"
    with running_server(data, env={"LOUPE_TOKEN": ""}) as base:
        yield base, data


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
def page(browser):
    context = browser.new_context(viewport={"width": 1300, "height": 850})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    # Chromium reports what the Content-Security-Policy blocked (an inline handler, eval) on the console.
    pg.on("console", lambda m: "Content Security Policy" in m.text and errors.append(m.text))
    yield pg
    context.close()
    assert not errors, f"JavaScript errors or CSP violations: {errors}"
