"""Past quality_live_max images a snapshot's page says its health and a diff are being computed, then shows
what the real worker stored, with the flags' as-of line and its buttons, in Chromium (no console error, CSP
report or server error)."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
from playwright.sync_api import expect

from tests.factories import add_class, label, upload_fmnist
from tests.servers import running_server, server_errors

pytestmark = pytest.mark.browser


def _worker(data) -> None:
    done = subprocess.run([sys.executable, "-m", "app.cli", "worker", "--once", "--data", str(data)],
                          env={**os.environ, "LOUPE_TOKEN": ""}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_pending_then_stored_health_and_diff(tmp_path, page):
    data, log = tmp_path / "data", tmp_path / "server.log"
    with running_server(data, env={"LOUPE_TOKEN": "", "LOUPE_QUALITY_LIVE_MAX": "5"}, log=log) as base:
        with httpx.Client(base_url=base, timeout=60) as client:
            ids = upload_fmnist(client, 12)
            for name in ("shirt", "bag"):
                add_class(client, name)
            for n, image in enumerate(ids[:10]):
                label(client, image, ("shirt", "bag")[n % 2])
            first = client.post("/api/snapshots", json={"name": "first"}).json()

            # The health is queued at the freeze: the page says so, with a link to the job, and shows no number.
            page.goto(f"{base}/snapshots/{first['id']}")
            as_of = page.locator("#as-of")
            expect(as_of).to_contain_text(f"being computed by report job #{first['queued'][0]}")
            expect(page.locator('[data-metric="total"]')).to_have_count(0)
            page.screenshot(path=str(tmp_path / "health-pending.png"), full_page=True)
            _worker(data)
            page.reload()
            expect(as_of).to_contain_text("no flag on its images changed since")
            expect(page.locator('[data-metric="total"]')).to_have_text("10")
            page.screenshot(path=str(tmp_path / "health-stored.png"), full_page=True)

            # Refresh the flags: a new job, and the line says it is under way.
            page.get_by_role("button", name="Refresh the flags").click()
            expect(page.locator("#as-of")).to_contain_text("Refreshing: job #")
            _worker(data)

            # A second snapshot: its diff with the first is queued with it; Compare shows it pending, then stored.
            label(client, ids[10], "shirt")
            label(client, ids[0], "bag")
            second = client.post("/api/snapshots", json={"name": "second"}).json()
            page.goto(f"{base}/snapshots/{second['id']}")
            page.get_by_role("button", name="Compare").click()          # htmx: the diff block alone
            expect(page.locator("#diff-pending")).to_contain_text("being computed by report job #")
            page.screenshot(path=str(tmp_path / "diff-pending.png"), full_page=True)
            _worker(data)
            page.reload()
            expect(page.locator(".diff-counts")).to_contain_text("+1 added")
            expect(page.locator(".diff-counts")).to_contain_text("1 relabelled")
            expect(page.locator("#diff")).to_contain_text("Computed once by report job #")
            page.screenshot(path=str(tmp_path / "diff-stored.png"), full_page=True)

            # The other direction (from the first snapshot's page) reads the same stored diff, mirrored.
            page.goto(f"{base}/snapshots/{first['id']}?diff_with={second['id']}")
            expect(page.locator(".diff-counts")).to_contain_text("−1 removed")
    assert not server_errors(log), "server errors:\n" + "\n".join(server_errors(log)[:20])
