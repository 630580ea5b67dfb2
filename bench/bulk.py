"""Bulk actions at scale: preview, apply and undo of one relabel over every unlabelled image, and a bulk
exclude with its undo, on N seeded images (bench/scale.py's seeding: 20 real files, the rest SQL rows).

    .venv/bin/python bench/bulk.py [--images 20000]

Prints one line: how many images the relabel touched and the seconds each step took.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from scale import seed  # also puts the repo on sys.path

from app.config import Settings
from app.db.engine import Database
from app.labelling import bulk
from app.labelling.events import LabelInput
from app.labelling.queries import ImageFilter


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data=Path(tmp) / "data")
        seed(settings, args.images)
        db = Database(settings.database_url)
        try:
            steps = {}
            everything = bulk.Selection(filter=ImageFilter(status="unlabelled"), filter_json={"status": "unlabelled"})
            for name, run in (
                ("preview", lambda s: bulk.preview(s, everything, class_ref="Shirt")),
                ("apply", lambda s: bulk.apply(s, everything, data=LabelInput("Shirt", annotator="bench"))),
                ("undo", lambda s: bulk.undo(s, steps["apply"][1]["id"], annotator="bench")),
                ("exclude", lambda s: bulk.apply(s, bulk.Selection(filter=ImageFilter(class_ref="Bag")),
                                                 action="exclude", reason="bench", annotator="bench")),
                ("exclude_undo", lambda s: bulk.undo(s, steps["exclude"][1]["id"], annotator="bench")),
            ):
                with db.writing() as s:
                    t0 = time.perf_counter()
                    result = run(s)
                    steps[name] = (time.perf_counter() - t0, result)
            relabelled = steps["apply"][1]["count"]
            print(f"bulk images={args.images} relabelled={relabelled} excluded={steps['exclude'][1]['count']} "
                  + " ".join(f"{k}_s={v[0]:.2f}" for k, v in steps.items()))
        finally:
            db.dispose()


if __name__ == "__main__":
    main()
