"""Random sequences of taxonomy operations and labels never lose or change a label.

A hypothesis state machine applies operations (valid or not) and labels, and
checks after every step: no label event is lost or changed; each image's
current label is its latest event and is an active class unless the image
waits in re-review; merges conserve label counts; replaying the change log
alone rebuilds every version's classes and keys; and a class's shortcut key
never changes, nor passes to another class, except by an explicit choice.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule
from sqlalchemy import select

from app.db.models import LabelClass, TaxonomyChange, TaxonomyVersion
from app.labelling import rereview
from app.labelling.events import LabelInput, record_label
from app.taxonomy.history import state_at
from app.taxonomy.keys import keys_at
from app.taxonomy.queries import active_classes, class_counts
from tests.taxonomy.machines import DataFolderMachine, template_folder
from tests.taxonomy.machines import run as run_machine

N_IMAGES = 8
NAMES = st.sampled_from(["cat", "dog", "bird", "fish", "lion", "wolf", "owl", "eel", "ant", "bee"])
KEYS = st.sampled_from(list("1234fhk"))  # few, so explicit choices often hit keys other classes hold or held


def _key_entries(detail: dict) -> list[dict]:
    return [*detail.get("keys", []), *(k for step in detail.get("steps", []) for k in _key_entries(step))]


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A data dir with N_IMAGES real images and two classes, copied for each example."""
    return template_folder(tmp_path_factory.mktemp("prop"), N_IMAGES,
                           [{"op": "add", "name": "cat"}, {"op": "add", "name": "dog"}])


class TaxonomyMachine(DataFolderMachine):
    def __init__(self):
        self.states: dict[int, dict] = {}
        self.keys: dict[int, dict] = {}
        self.holders: dict[str, set[int]] = {}  # key -> every class that ever held it
        super().__init__()
        first = self._record_state()
        for class_id, (key, _) in self.keys[first].items():
            self.holders.setdefault(key, set()).add(class_id)

    def _active(self) -> list[LabelClass]:
        with self.db.reading() as s:
            return active_classes(s)

    def _record_state(self):
        with self.db.reading() as s:
            v = s.scalar(select(TaxonomyVersion.number).order_by(TaxonomyVersion.number.desc()).limit(1))
            classes = list(s.scalars(select(LabelClass)))
            self.states[v] = {c.id: (c.name, c.description, c.retired_version_id is None) for c in classes}
            self.keys[v] = {c.id: (c.shortcut, c.retired_version_id is None) for c in classes}
        return v

    def _check_keys(self, before: dict, after: dict, change: dict) -> None:
        """Keys move only where the person chose them; a restored class keeps its key unless it was taken."""
        with self.db.reading() as s:
            detail = s.scalars(select(TaxonomyChange).order_by(TaxonomyChange.id.desc())).first().detail
        recorded = {k["class_id"]: k for k in _key_entries(detail)}
        explicit = (change["op"] == "set-shortcut" or (change["op"] == "add" and change.get("shortcut"))
                    or any(step["op"] == "set-shortcut" for step in detail.get("steps", [])))  # undoing one
        for class_id, (key, active) in after.items():
            old_key, was_active = before.get(class_id, (None, False))
            if class_id in before and key != old_key:
                assert class_id in recorded and recorded[class_id]["to"] == key, f"class {class_id} key moved silently"
                assert explicit or not was_active, f"active class {class_id} lost key {old_key} without a key op"
                if not explicit:  # an undo brought it back and its key was explicitly given away meanwhile
                    assert any(after[o] == (old_key, True) for o in self.holders.get(old_key, ()) if o != class_id)
            if key is not None and class_id not in self.holders.get(key, {class_id}):
                assert explicit and recorded.get(class_id, {}).get("to") == key, (
                    f"key {key} handed from {self.holders[key]} to class {class_id} silently")
            if key is not None:
                self.holders.setdefault(key, set()).add(class_id)

    def _change(self, change: dict) -> bool:
        if not self._apply(change):
            return False
        before = self.keys[max(self.keys)]
        self._check_keys(before, self.keys[self._record_state()], change)
        return True

    @rule(name=NAMES, key=st.none() | KEYS)
    def add(self, name, key):
        self._change({"op": "add", "name": name} if key is None else {"op": "add", "name": name, "shortcut": key})

    @rule(data=st.data(), key=st.none() | KEYS)
    def set_shortcut(self, data, key):
        classes = self._active()
        if classes:
            self._change({"op": "set-shortcut", "class": data.draw(st.sampled_from(classes)).id, "shortcut": key})

    @rule(data=st.data(), name=NAMES)
    def rename(self, data, name):
        classes = self._active()
        if classes:
            self._change({"op": "rename", "class": data.draw(st.sampled_from(classes)).id, "name": name})

    @rule(data=st.data(), text_=st.text(max_size=20))
    def describe(self, data, text_):
        classes = self._active()
        if classes:
            self._change({"op": "describe", "class": data.draw(st.sampled_from(classes)).id, "description": text_})

    @rule(data=st.data(), new_name=NAMES, into_new=st.booleans())
    def merge(self, data, new_name, into_new):
        classes = self._active()
        if len(classes) < 2:
            return
        picked = data.draw(st.lists(st.sampled_from(classes), min_size=1, max_size=3, unique_by=lambda c: c.id))
        into = new_name if into_new else data.draw(st.sampled_from(classes)).id
        with self.db.reading() as s:
            before = class_counts(s)
        if self._change({"op": "merge", "classes": [c.id for c in picked], "into": into}):
            with self.db.reading() as s:
                after = class_counts(s)
                target = s.scalars(select(TaxonomyChange).order_by(TaxonomyChange.id.desc())).first().detail["into"]
            moved_from = {c.id for c in picked} - {target["class_id"]}
            expected = before.get(target["class_id"], 0) + sum(before.get(i, 0) for i in moved_from)
            assert after.get(target["class_id"], 0) == expected
            assert all(after.get(i, 0) == 0 for i in moved_from)

    @rule(data=st.data(), names=st.lists(NAMES, min_size=1, max_size=3))
    def split(self, data, names):
        classes = self._active()
        if classes:
            self._change({"op": "split", "class": data.draw(st.sampled_from(classes)).id, "into": names})

    @rule(data=st.data())
    def retire(self, data):
        classes = self._active()
        if classes:
            self._change({"op": "retire", "class": data.draw(st.sampled_from(classes)).id})

    @rule(version=st.integers(min_value=1, max_value=12))
    def undo(self, version):
        self._change({"op": "undo", "version": version})

    @rule(data=st.data(), confidence=st.sampled_from([1.0, 0.6, 0.3]))
    def label(self, data, confidence):
        image = data.draw(st.sampled_from(self.images))
        with self.db.reading() as s:
            allowed = rereview.offered_ids(s, rereview.open_flag(s, image))
        choices = allowed or [c.id for c in self._active()]
        if not choices:
            return
        with self.db.writing() as s:
            record_label(s, image_id=image, data=LabelInput(data.draw(st.sampled_from(choices)), confidence,
                                                            ["dark"], "", "prop"))

    @rule(data=st.data())
    def undo_label(self, data):
        self._undo_label(data.draw(st.sampled_from(self.images)))

    @invariant()
    def no_label_event_lost_or_changed(self):
        events = self._read(
            "SELECT id, image_id, class_id, confidence, tags, note, annotator, kind, taxonomy_version_id, created_at "
            "FROM label_events ORDER BY id")
        assert events[: len(self.events)] == self.events
        self.events = events

    @invariant()
    def current_label_is_latest_event_and_active_or_in_rereview(self):
        rows = self._read("""
            SELECT c.image_id, c.class_id, c.event_id, (SELECT max(id) FROM label_events e WHERE e.image_id = c.image_id),
                   k.retired_version_id IS NULL,
                   EXISTS (SELECT 1 FROM flags f WHERE f.image_id = c.image_id AND f.kind = 'rereview'
                           AND f.status = 'open')
            FROM current_labels c LEFT JOIN classes k ON k.id = c.class_id""")
        for image, class_id, event_id, latest, active, waiting in rows:
            assert event_id == latest
            if class_id is not None:
                assert active or waiting, f"image {image} holds a retired class and is not in re-review"

    @invariant()
    def replaying_the_log_rebuilds_every_version(self):
        changes = [(v, op, d) for v, op, d in self._read(
            "SELECT v.number, c.op, c.detail FROM taxonomy_changes c JOIN taxonomy_versions v ON v.id = c.version_id "
            "ORDER BY c.id")]
        import json

        changes = [(v, op, json.loads(d)) for v, op, d in changes]
        for number, recorded in self.states.items():
            assert state_at(changes, number) == recorded, f"version {number}"
            assert keys_at(changes, number) == {c: key for c, (key, _) in self.keys[number].items()}, f"v{number} keys"


@pytest.mark.parametrize("run", [0])
def test_taxonomy_state_machine(template, run):
    run_machine(TaxonomyMachine, template, examples=40)
