"""What the taxonomy state machines share: each example works on its own copy of a template data folder."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine
from sqlalchemy import text

from app.config import Settings
from app.db.engine import Database
from app.db.migrate import upgrade_head
from app.errors import LoupeError
from app.images.ingest import import_paths
from app.labelling.events import undo_label
from app.taxonomy.service import apply_change
from tests import fmnist


class DataFolderMachine(RuleBasedStateMachine):
    """A copy of `template_db` per example; `_read` runs SQL, `_apply` a taxonomy change (a refused one must write
    no version)."""

    template_db: Path

    def __init__(self):
        super().__init__()
        self.dir = Path(tempfile.mkdtemp())
        shutil.copy(self.template_db, self.dir / "loupe.db")
        self.db = Database(f"sqlite:///{self.dir / 'loupe.db'}")
        self.events: list[tuple] = []
        self.images = self._read("SELECT id FROM images ORDER BY id")

    def teardown(self):
        self.db.dispose()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _read(self, sql: str) -> list:
        with self.db.reading() as s:
            return [tuple(r) if len(r) > 1 else r[0] for r in s.execute(text(sql))]

    def _undo_label(self, image: int) -> None:
        """Undo the image's current label; a refusal (a moved label, one whose earlier class is retired) writes
        nothing."""
        current = self._read(f"SELECT event_id FROM current_labels WHERE image_id = {image}")
        if current:
            count = self._read("SELECT count(*) FROM label_events")[0]
            try:
                with self.db.writing() as s:
                    undo_label(s, image_id=image, event_id=current[0], annotator="prop")
            except LoupeError:
                assert self._read("SELECT count(*) FROM label_events")[0] == count

    def _apply(self, change: dict) -> bool:
        """Whether the change was made; a refused one leaves the versions as they were."""
        versions = self._read("SELECT count(*) FROM taxonomy_versions")[0]
        try:
            with self.db.writing() as s:
                apply_change(s, change=change)
        except LoupeError:
            assert self._read("SELECT count(*) FROM taxonomy_versions")[0] == versions
            return False
        return True


def template_folder(root: Path, n_images: int, changes: list[dict]) -> Path:
    """A data folder under `root` with `n_images` real images and these taxonomy changes made; its database."""
    s = Settings(data=root / "data")
    s.ensure_dirs()
    upgrade_head(s.database_url)
    db = Database(s.database_url)
    import_paths(db, s, fmnist.write_pngs(root / "png", n_images), source="fmnist")
    for change in changes:
        with db.writing() as session:
            apply_change(session, change=change)
    db.dispose()
    return s.database_path


def run(machine: type[DataFolderMachine], template: Path, examples: int) -> None:
    machine.template_db = template
    case = machine.TestCase
    case.settings = settings(max_examples=examples, stateful_step_count=25, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    case().runTest()
