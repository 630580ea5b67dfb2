"""An ImageFolder export loads with torchvision and agrees with its manifest.

torch and torchvision come from the `worker` extra (pip install -e ".[worker]").
This test fails when they are missing; set LOUPE_SKIP_TORCH=1 to skip it on a
machine that deliberately has no torch.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from tests.snapshots.conftest import freeze, run_loupe

if os.environ.get("LOUPE_SKIP_TORCH") == "1":
    pytest.skip("LOUPE_SKIP_TORCH=1: torchvision checks skipped", allow_module_level=True)


def _torchvision():
    try:
        import torchvision
    except ImportError as exc:  # fail loudly: the export's whole point is that torchvision reads it
        pytest.fail(f"torchvision is not installed ({exc}); pip install -e '.[worker]' or set LOUPE_SKIP_TORCH=1")
    return torchvision


def test_imagefolder_export_loads_with_torchvision(labelled, settings, tmp_path):
    datasets = _torchvision().datasets
    snap = freeze(labelled.client, "tv", split={"val": 0.3, "seed": 0, "folds": 3})
    out = tmp_path / "tv"
    done = run_loupe("export", "tv", "--format", "imagefolder", "--out", out, "--data", settings.data_dir)
    assert done.returncode == 0, done.stderr
    with open(out / "manifest.csv", newline="") as f:
        manifest = {r["path"]: r for r in csv.DictReader(f)}

    seen = 0
    for split in ("train", "val"):
        ds = datasets.ImageFolder(str(out / split))
        assert ds.classes == ["bag", "shirt", "shoe"]
        assert len(ds) == sum(1 for r in manifest.values() if r["split"] == split)
        for path, target in ds.samples:
            row = manifest[Path(path).relative_to(out).as_posix()]
            assert ds.classes[target] == row["label"] and row["split"] == split
            seen += 1
        image, target = ds[0]
        assert image.size == (28, 28) and ds.classes[target] == manifest[
            Path(ds.samples[0][0]).relative_to(out).as_posix()]["label"]
    assert seen == snap["count"]
