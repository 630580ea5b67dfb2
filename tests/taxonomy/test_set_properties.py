"""Random sequences of taxonomy operations and set labels in a multi-label taxonomy never lose or change a label.

A hypothesis state machine adds, merges, splits and retires classes, undoes versions, labels images with
random sets (the empty set too) and undoes labels; after every step: no label event and no event's class row is lost or
changed; each image's current set is its latest event's; the class counts are the current sets' counts; a
merge unites sets (each image that carried a merged class carries the target once, the others nothing of
theirs); a retire takes the class out of every current set; a split sends exactly the images carrying the
class to re-review; undoing a merge or retire gives back the sets it rewrote.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

from app.errors import LoupeError
from app.labelling.events import LabelInput, record_label
from app.taxonomy.queries import active_classes, class_counts
from tests.taxonomy.machines import DataFolderMachine, template_folder
from tests.taxonomy.machines import run as run_machine

N_IMAGES = 8
NAMES = st.sampled_from(["red", "blue", "dress", "shoe", "bag", "hat", "coat", "sock"])


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A data dir with N_IMAGES real images, three classes and a multi-label taxonomy, copied per example."""
    return template_folder(tmp_path_factory.mktemp("setprop"), N_IMAGES, [
        {"op": "add", "name": "red"}, {"op": "add", "name": "dress"}, {"op": "add", "name": "shoe"},
        {"op": "set-mode", "mode": "multi-label"}])


class SetMachine(DataFolderMachine):
    def __init__(self):
        super().__init__()
        self.members: list[tuple] = []

    def _active(self) -> list[int]:
        with self.db.reading() as s:
            return [c.id for c in active_classes(s)]

    def _sets(self) -> dict[int, frozenset]:
        out = {i: frozenset() for i in self._read("SELECT image_id FROM current_labels WHERE multi")}
        for image, cls in self._read("SELECT image_id, class_id FROM current_label_classes"):
            out[image] = out[image] | {cls}
        return out

    def _rereview(self) -> set[int]:
        return set(self._read("SELECT image_id FROM flags WHERE kind = 'rereview' AND status = 'open'"))

    def _change(self, change: dict) -> bool:
        return self._apply(change)

    @rule(name=NAMES)
    def add(self, name):
        self._change({"op": "add", "name": name})

    @rule(data=st.data(), new_name=NAMES, into_new=st.booleans())
    def merge(self, data, new_name, into_new):
        classes = self._active()
        if len(classes) < 2:
            return
        picked = set(data.draw(st.lists(st.sampled_from(classes), min_size=1, max_size=3, unique=True)))
        into = new_name if into_new else data.draw(st.sampled_from(classes))
        before = self._sets()
        if not self._change({"op": "merge", "classes": sorted(picked), "into": into}):
            return
        target = self._read("SELECT detail FROM taxonomy_changes ORDER BY id DESC LIMIT 1")[0]
        import json

        target = json.loads(target)["into"]["class_id"]
        merged = picked | {target}
        for image, now in self._sets().items():
            was = before.get(image, frozenset())
            expected = (was - merged) | ({target} if was & merged else set())
            assert now == expected, f"image {image}: {sorted(was)} merged {sorted(merged)} -> {sorted(now)}"

    @rule(data=st.data(), names=st.lists(NAMES, min_size=1, max_size=3))
    def split(self, data, names):
        classes = self._active()
        if not classes:
            return
        cls = data.draw(st.sampled_from(classes))
        carrying = {i for i, s in self._sets().items() if cls in s}
        waiting = self._rereview()
        if self._change({"op": "split", "class": cls, "into": names}):
            assert self._rereview() - waiting == carrying - waiting   # exactly the images carrying it, no other

    @rule(data=st.data())
    def retire(self, data):
        classes = self._active()
        if classes:
            cls = data.draw(st.sampled_from(classes))
            if self._change({"op": "retire", "class": cls}):
                assert all(cls not in s for s in self._sets().values())

    @rule()
    def undo_latest(self):
        """The newest version: the undo people make, and the one whose images are most often untouched since."""
        self.undo(self._read("SELECT max(number) FROM taxonomy_versions")[0])

    @rule(version=st.integers(min_value=1, max_value=12))
    def undo(self, version):
        """An undone merge or retire gives each image whose set it rewrote (and nobody changed since) the set
        it had before."""
        found = self._read(f"SELECT id FROM taxonomy_versions WHERE number = {version}")
        before = {}
        for image, event in (self._read(
                "SELECT c.image_id, c.event_id FROM current_labels c JOIN label_events e ON e.id = c.event_id "
                f"WHERE e.kind = 'migration' AND e.multi AND e.taxonomy_version_id = {found[0]}") if found else []):
            earlier = self._read(f"SELECT max(id) FROM label_events WHERE image_id = {image} AND id < {event} "
                                 "AND kind != 'audit'")[0]
            before[image] = frozenset(self._read(f"SELECT class_id FROM label_event_classes WHERE event_id = {earlier}"))
        if self._change({"op": "undo", "version": version}):
            sets = self._sets()
            for image, was in before.items():
                assert sets[image] == was, f"image {image}: {sorted(sets[image])}, not {sorted(was)} back"

    @rule(data=st.data(), confidence=st.sampled_from([1.0, 0.6]))
    def label(self, data, confidence):
        image = data.draw(st.sampled_from(self.images))
        classes = self._active()
        chosen = data.draw(st.lists(st.sampled_from(classes), unique=True, max_size=3)) if classes else []
        try:
            with self.db.writing() as s:
                record_label(s, image_id=image, data=LabelInput(None, confidence, [], "", "prop", classes=chosen))
        except LoupeError:
            return
        assert self._sets()[image] == frozenset(chosen)

    @rule(data=st.data())
    def undo_label(self, data):
        self._undo_label(data.draw(st.sampled_from(self.images)))

    @invariant()
    def no_event_or_event_class_lost_or_changed(self):
        events = self._read("SELECT id, image_id, class_id, multi, confidence, kind, created_at FROM label_events "
                            "ORDER BY id")
        members = self._read("SELECT event_id, class_id, confidence FROM label_event_classes "
                             "ORDER BY event_id, class_id")
        assert events[: len(self.events)] == self.events
        assert members[: len(self.members)] == self.members
        self.events, self.members = events, members

    @invariant()
    def current_set_is_the_latest_events_and_counts_follow(self):
        latest = dict(self._read("SELECT image_id, max(id) FROM label_events GROUP BY image_id"))
        current = dict(self._read("SELECT image_id, event_id FROM current_labels"))
        assert current == {i: e for i, e in latest.items() if i in current}
        by_event: dict[int, set] = {}
        for event, cls in self._read("SELECT event_id, class_id FROM label_event_classes"):
            by_event.setdefault(event, set()).add(cls)
        multi = set(self._read("SELECT image_id FROM current_labels WHERE multi"))
        sets = self._sets()
        for image in multi:
            assert sets[image] == by_event.get(current[image], set())
        counted: dict[int, int] = {}
        for s in sets.values():
            for cls in s:
                counted[cls] = counted.get(cls, 0) + 1
        with self.db.reading() as s:
            counts = class_counts(s)
        assert {c: n for c, n in counts.items() if n} == counted


@pytest.mark.parametrize("run", [0])
def test_set_taxonomy_state_machine(template, run):
    run_machine(SetMachine, template, examples=30)
