"""Search by an uploaded image: latency from POST /api/similar to the answer, with a warm worker.

A temporary data dir gets N real Fashion-MNIST images and an embed job
(resnet18, a seeded random state_dict: no pretrained weights here; the time
does not depend on the weights); a real `loupe worker` with the default
settings (LOUPE_POLL_S 1.0, unless --poll says otherwise) runs it, then Q
searches are made one after another, each polled every 20 ms until it has
succeeded. The first search loads the model and the index; it is reported
apart. One line per run: p50 / p95 of the whole round trip and of the
worker's own part (the job's metrics.seconds: load, decode, embed, nearest).

Run: .venv/bin/python bench/search_upload.py [--n 1000] [--queries 20] [--poll 1.0] [--size 64]
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from torchvision import models  # noqa: E402

from app.config import Settings  # noqa: E402
from app.main import create_app  # noqa: E402
from tests import fmnist  # noqa: E402


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def wait(client, url: str, done, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(url).json()
        if done(body):
            return body
        time.sleep(0.02)
    raise SystemExit(f"timed out waiting for {url}: {body}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--poll", type=float, default=1.0)
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args()
    images, _ = fmnist.load("train", args.n)
    queries, _ = fmnist.load("test", args.queries + 1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        settings = Settings(data=tmp / "data")
        settings.ensure_dirs()
        torch.manual_seed(0)
        torch.save(models.resnet18(weights=None).state_dict(), tmp / "resnet18.pth")
        worker = None
        with TestClient(create_app(settings)) as client:
            for start in range(0, args.n, 500):
                files = [("files", (f"f{i}.png", png(images[i]), "image/png"))
                         for i in range(start, min(start + 500, args.n))]
                assert client.post("/api/images", data={"source": "fmnist"}, files=files).status_code == 200
            space = client.post("/api/jobs", json={"kind": "embed", "config": {
                "weights": str(tmp / "resnet18.pth"), "image_size": args.size}}).json()["id"]
            worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker", "--data", str(settings.data_dir)],
                                      env={**os.environ, "LOUPE_POLL_S": str(args.poll)},
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                body = wait(client, f"/api/jobs/{space}", lambda b: b["status"] in ("succeeded", "failed"))
                assert body["status"] == "succeeded", body["error"]
                # Let the analysis the embed job queued finish first: it would hold the worker.
                wait(client, "/api/jobs", lambda b: all(j["status"] not in ("queued", "running") for j in b["items"]))
                total, own = [], []
                for q in range(args.queries + 1):
                    t0 = time.perf_counter()
                    r = client.post("/api/similar", files={"file": ("q.png", png(queries[q]), "image/png")},
                                    data={"k": "20"})
                    job = r.json()["job"]
                    body = wait(client, f"/api/similar/{job}", lambda b: b["status"] != "queued" and
                                b["status"] != "running")
                    assert body["status"] == "succeeded", body["error"]
                    total.append(time.perf_counter() - t0)
                    own.append(client.get(f"/api/jobs/{job}").json()["metrics"]["seconds"])
                first_total, first_own = total.pop(0), own.pop(0)
                print(f"search_upload n={args.n} size={args.size}px poll_s={args.poll} queries={args.queries} "
                      f"first={first_total:.2f}s (worker {first_own:.2f}s) "
                      f"warm p50={np.percentile(total, 50):.3f}s p95={np.percentile(total, 95):.3f}s "
                      f"worker p50={np.percentile(own, 50):.3f}s p95={np.percentile(own, 95):.3f}s", flush=True)
            finally:
                worker.terminate()
                worker.wait(30)


if __name__ == "__main__":
    main()
