"""/map in Chromium with 100,000 points: first paint, and the time one frame of pan / zoom takes to draw.

first_paint_ms: from navigation start until the canvas holds every point (the page's data-painted:
performance.now() after the first paint), which includes the page, GET /api/embeddings/map?format=columns
(printed as api_ms, with the time before it starts and after it ends: parsing, typed arrays, the draw). frame_ms: paint() alone, over 30
zoom and pan steps (p50 and max; 16 ms is one frame at 60 Hz). Debian's chromium, headless, software
rendering, 1300x850 window; data from bench/_map_data.py.

On a machine shared with other work, `nice -n -10` (as root) shows what two free cores give: the server and
Chromium inherit it.

Run: .venv/bin/python bench/map_paint.py [--n 100000] [--runs 3] [--screenshot out.png]
"""

from __future__ import annotations

import argparse
import os
import statistics

from _map_data import build
from _server import serve
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--screenshot")
    args = parser.parse_args()
    data = build(args.n)
    firsts, apis, frames, starts, afters = [], [], [], [], []
    with serve(data) as (base, _), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for run in range(args.runs):
            page = browser.new_context(viewport={"width": 1300, "height": 850}).new_page()
            page.goto(base + "/map")
            page.wait_for_selector("#map-page[data-painted]", timeout=60_000)
            assert page.get_attribute("#map-page", "data-points") == str(args.n)
            firsts.append(float(page.get_attribute("#map-page", "data-painted")))
            api = page.evaluate("""(() => { const e = performance.getEntriesByType('resource')
                .filter(e => e.name.includes('/api/embeddings/map'))[0];
                return [e.startTime, e.duration, e.responseEnd]; })()""")
            apis.append(api[1])
            starts.append(api[0])
            afters.append(firsts[-1] - api[2])
            if run == 0:
                page.locator("#map-canvas").hover()
                for i in range(30):
                    page.keyboard.press("+" if i < 15 else "ArrowLeft")
                    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
                    frames.append(float(page.get_attribute("#map-page", "data-paint-ms")))
                if args.screenshot:
                    page.keyboard.press("0")
                    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
                    page.screenshot(path=args.screenshot)
            page.context.close()
        browser.close()
    print(f"map_paint n={args.n:,} first_paint_ms={statistics.median(firsts):.0f} (runs {', '.join(f'{x:.0f}' for x in firsts)}) "
          f"(page until the fetch {statistics.median(starts):.0f}, api_ms={statistics.median(apis):.0f}, "
          f"arrays and first draw {statistics.median(afters):.0f}) frame_ms_p50={statistics.median(frames):.1f} "
          f"frame_ms_max={max(frames):.1f} target_first_paint_ms=1000 load={os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
