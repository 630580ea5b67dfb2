"""Loupe -> format -> Loupe, for each other tool's format: the labels come back, with every field the format
carries (its DROPS say which it cannot), and the images are the exported originals."""

from __future__ import annotations

import json

import pytest

from app import formats
from tests.formats.common import export, frozen, library, reimport


@pytest.mark.parametrize("fmt", ["cvat", "fiftyone", "label-studio"])
def test_export_then_import_keeps_what_the_format_carries(fmt, labelled, settings, tmp_path):
    if fmt not in formats.WRITERS:
        pytest.fail(f"{fmt} is not an export format")
    out = tmp_path / fmt
    snap = export(labelled, settings, out, fmt)
    drops = set(json.loads((out / "loupe-export.json").read_text())["drops"])
    assert drops == set(formats.module(fmt, formats.WRITERS).DROPS)
    rows = frozen(labelled.client, snap["id"])

    fresh = tmp_path / "fresh"
    back = reimport(out, fmt, fresh)
    assert back.returncode == 0, back.stderr
    assert f"labels: {snap['count']} added" in back.stdout
    got = library(fresh)
    assert got.keys() == rows.keys()  # every image, its bytes unchanged (the same sha256)
    for sha, want in rows.items():
        x = got[sha]
        assert x["class"] == want["label"] and x["kind"] == "import"
        assert x["confidence"] == (1.0 if "confidence" in drops else want["confidence"])
        assert x["tags"] == ([] if "tags" in drops else want["tags"])
        assert (x["annotator"] == "ana") == ("annotator" not in drops)
        assert (x["made_at"] < snap["created_at"]) == ("labelled_at" not in drops)
    assert any(x["tags"] for x in rows.values()) and any(x["confidence"] < 1 for x in rows.values())
