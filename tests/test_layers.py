"""Packages import one way: each of app's packages only from packages below it (issue 17).

The ranks say what sits on what: foundations, the domain packages from the one
that knows least (images) to the one that reads everything (quality), then the
worker, then the web edge and the entry points. `KNOWN` lists the upward imports
that exist today, by module: the test fails on a new one, and on a listed one
that has gone (so the list only shrinks). Each entry is a loop waiting for its
owner to be untangled (see docs/architecture.md).
"""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"

RANK = {
    "errors": 0, "timeutil": 0, "config": 0,
    "db": 1,
    "accounts": 2, "images": 2, "keyboard": 2, "formats": 2,
    "artifacts": 3,
    "taxonomy": 3,
    "labelling": 4,
    "embeddings": 5,
    "snapshots": 6,
    "quality": 7,
    "training": 8, "backup": 8,
    "web": 9,
    "main": 10, "cli": 10, "client": 10,
}

# (module, package it reaches up to): the loops left to untangle.
KNOWN = {
    ("app/labelling/orders.py", "embeddings"),
}


def _package(path: Path) -> str:
    parts = path.relative_to(APP).parts
    return parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    """The app packages a module imports (anywhere in it: a deferred import is still a dependency)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
            [a.name for a in node.names] if isinstance(node, ast.Import) else []
        found |= {n.split(".")[1] for n in names if n.startswith("app.") and n.count(".") >= 1}
    return found


def _upward() -> set[tuple[str, str]]:
    out = set()
    for path in sorted(APP.rglob("*.py")):
        here = _package(path)
        for target in _imports(path) - {here}:
            if RANK[target] > RANK[here]:
                out.add((str(path.relative_to(APP.parent)), target))
    return out


def test_every_package_has_a_rank():
    packages = {_package(p) for p in APP.rglob("*.py")} - {"__init__"}
    assert packages <= RANK.keys(), f"give these a rank: {sorted(packages - RANK.keys())}"


def test_no_new_import_reaches_up_a_layer():
    new = _upward() - KNOWN
    assert not new, f"imports from a package above: {sorted(new)} (move the shared rule down, or pass it in)"


def test_the_known_loops_only_shrink():
    gone = KNOWN - _upward()
    assert not gone, f"untangled, well done: remove {sorted(gone)} from KNOWN"
