"""Class shortcut keys: a class keeps its key for life, and no key changes hands silently.

A labeller's fingers learn the keys. If a key freed by a merge or retire went
to another class, the same finger movement would write a different label
without any sign, so: new classes only get keys no class (active or retired)
has ever held; a retired class keeps its key in its row, and an undo that
brings it back gives that key back. Only an explicit choice (a shortcut given
when adding, or the `set-shortcut` operation) moves a key, and every key a
version gives, moves or takes is listed in its change detail under "keys".
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import LabelClass, TaxonomyChange
from app.keyboard import AUTO_SHORTCUTS, RESERVED_KEYS, keys_in_use


def keys_ever_held(session: Session) -> set[str]:
    """Every key a class holds or held: the keys in the class rows, and every key the change log ever moved.

    The log is read whole (every change records its key moves in detail["keys"]): a key given away by
    `set-shortcut` and then freed by an undo is in no class row any more, yet it was someone's key.
    """
    held = {k for k in session.scalars(select(LabelClass.shortcut).where(LabelClass.shortcut.is_not(None)))}
    for op, detail in session.execute(select(TaxonomyChange.op, TaxonomyChange.detail)):
        if not isinstance(detail, dict):
            continue
        moves = [*(detail.get("keys") or []), *([detail] if op == "set-shortcut" else [])]
        held.update(m[side] for m in moves for side in ("from", "to")
                    if isinstance(m, dict) and isinstance(m.get(side), str) and m.get(side))
    return held


def fresh_key(session: Session) -> str | None:
    """The first automatic key nobody holds or ever held (None when all are spent: the class gets no key)."""
    taken = keys_ever_held(session) | set(keys_in_use(session)) | RESERVED_KEYS
    return next((k for k in AUTO_SHORTCUTS if k not in taken), None)


def previous_holder(session: Session, key: str, *, besides: int | None = None) -> LabelClass | None:
    """A retired class that holds `key` (so giving it away must be said out loud)."""
    return session.scalars(
        select(LabelClass).where(LabelClass.shortcut == key, LabelClass.retired_version_id.is_not(None),
                                 LabelClass.id != (besides or 0)).order_by(LabelClass.id)
    ).first()


def key_change(cls: LabelClass, old: str | None, new: str | None, *, why: str, was: str | None = None) -> dict:
    """One entry of a change's "keys" list: class `cls` went from key `old` to `new` (None = no key)."""
    entry = {"class_id": cls.id, "name": cls.name, "from": old, "to": new, "why": why}
    if was:
        entry["was"] = was
    return entry


def describe_key(entry: dict) -> str:
    """One readable clause for a key change in the version log."""
    name, old, new = entry["name"], entry.get("from"), entry.get("to")
    if new is None and old is None:
        return f"'{name}' has no key: every automatic key is held by another class (set one with set-shortcut)"
    if new is None:
        return f"'{name}' lost key {old}"
    was = f" (key {new} was held by retired '{entry['was']}')" if entry.get("was") else ""
    if old is None:
        return f"'{name}' gets key {new}{was}"
    return f"'{name}' key {old} → {new}{was}"


def keys_at(changes: list[tuple[int, str, dict]], number: int) -> dict[int, str | None]:
    """Replay the key log up to version `number`: {class id: key}. Pure, like history.state_at."""
    keys: dict[int, str | None] = {}

    def apply(d: dict) -> None:
        for entry in d.get("keys", []):
            keys[entry["class_id"]] = entry["to"]
        for step in d.get("steps", []):
            apply(step)

    for v, _op, detail in changes:
        if v <= number:
            apply(detail)
    return keys
