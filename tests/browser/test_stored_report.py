"""Past quality_live_max images, the quality and health pages say how old their numbers are, and Refresh brings
them up to date through the real worker, in Chromium (no console error, CSP report or server error)."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from tests.factories import add_class, label, upload_fmnist
from tests.servers import running_server, server_errors

pytestmark = pytest.mark.browser


def test_the_as_of_line_and_refresh(tmp_path, page):
    data, log = tmp_path / "data", tmp_path / "server.log"
    with running_server(data, env={"LOUPE_TOKEN": "", "LOUPE_QUALITY_LIVE_MAX": "0"}, log=log) as base:
        with httpx.Client(base_url=base, timeout=60) as client:
            ids = upload_fmnist(client, 12)
            add_class(client, "shirt")
            for image in ids[:6]:
                label(client, image, "shirt")
            page.goto(f"{base}/quality")
            assert "none has run yet" in page.locator("#as-of").inner_text()
            page.get_by_role("button", name="Refresh").click()
            page.locator("#as-of a[href^='/jobs/']").wait_for()        # "Refreshing: job #N"
            worker = subprocess.run([sys.executable, "-m", "app.cli", "worker", "--once", "--data", str(data)],
                                    env={**os.environ, "LOUPE_TOKEN": ""}, capture_output=True, text=True, timeout=120)
            assert worker.returncode == 0, worker.stderr[-2000:]
            label(client, ids[6], "shirt")
            page.goto(f"{base}/quality")
            line = page.locator("#as-of").inner_text()
            assert "(report job #" in line and "1 label(s), 0 image(s) and 0 exclusion change(s) since" in line
            assert page.locator('[data-metric="effective"]').inner_text() == "6"      # as of the report: 6, not 7
            page.goto(f"{base}/snapshots/live")
            assert "1 label(s)" in page.locator("#as-of").inner_text()
            assert page.locator('[data-metric="total"]').inner_text() == "6"
    assert not server_errors(log), "server errors:\n" + "\n".join(server_errors(log)[:20])
