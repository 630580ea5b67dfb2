"""Multi-label taxonomies: a mode per taxonomy version, label events that carry a set of classes

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04

- taxonomy_versions.mode: 'single-label' (every version so far) or 'multi-label'; a version inherits its
  parent's, and only the set-mode operation changes it.
- label_events.multi: the event answers with a set of classes (its rows in label_event_classes, each with
  its own confidence; none at all is the explicit "none of these"). Its class_id stays NULL, so a NULL class
  still means "unlabelled" only when multi is false.
- label_event_classes: append-only, like label_events.
- current_labels.multi mirrors the current event's flag: images.labelled is now "a class, or a set"
  (0006's SQLite triggers and 0012's PostgreSQL function, redefined).
- current_label_classes: the classes of each image's current set, kept by triggers on current_labels (as
  0014's tags), for "has / lacks / exactly" filters; class_counts counts them through triggers of its own,
  so the taxonomy page's counts stay exact in both modes.

- snapshot_items.class_id may be NULL: an item of a snapshot frozen under a multi-label version takes its set
  from the label event it froze (app/snapshots/sets.py). On SQLite that is a copy of the table (kept WITHOUT
  ROWID), whose append-only triggers are made again.

Only ALTER TABLE ADD COLUMN touches current_labels: a batch copy on SQLite would lose 0011's and 0014's
triggers.
"""

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

APPEND_ONLY = "label_event_classes"

_SETS_FROM = ("INSERT INTO current_label_classes (image_id, class_id, confidence) "
              "SELECT {row}.image_id, l.class_id, l.confidence FROM label_event_classes l WHERE l.event_id = "
              "{row}.event_id")
SQLITE_TRIGGERS = [
    "DROP TRIGGER IF EXISTS current_labels_labelled_insert",
    "DROP TRIGGER IF EXISTS current_labels_labelled_update",
    """CREATE TRIGGER current_labels_labelled_insert AFTER INSERT ON current_labels
       BEGIN UPDATE images SET labelled = (NEW.class_id IS NOT NULL OR NEW.multi) WHERE id = NEW.image_id; END""",
    """CREATE TRIGGER current_labels_labelled_update AFTER UPDATE OF class_id, multi ON current_labels
       WHEN (OLD.class_id IS NULL AND NOT OLD.multi) != (NEW.class_id IS NULL AND NOT NEW.multi)
       BEGIN UPDATE images SET labelled = (NEW.class_id IS NOT NULL OR NEW.multi) WHERE id = NEW.image_id; END""",
    f"""CREATE TRIGGER current_labels_sets_insert AFTER INSERT ON current_labels WHEN NEW.multi
        BEGIN {_SETS_FROM.format(row='NEW')}; END""",
    f"""CREATE TRIGGER current_labels_sets_update AFTER UPDATE OF event_id ON current_labels
        WHEN OLD.multi OR NEW.multi
        BEGIN DELETE FROM current_label_classes WHERE image_id = OLD.image_id; {_SETS_FROM.format(row='NEW')}; END""",
    """CREATE TRIGGER current_labels_sets_delete AFTER DELETE ON current_labels WHEN OLD.multi
       BEGIN DELETE FROM current_label_classes WHERE image_id = OLD.image_id; END""",
    """CREATE TRIGGER current_label_classes_counts_insert AFTER INSERT ON current_label_classes
       BEGIN UPDATE class_counts SET labels = labels + 1 WHERE class_id = NEW.class_id; END""",
    """CREATE TRIGGER current_label_classes_counts_delete AFTER DELETE ON current_label_classes
       BEGIN UPDATE class_counts SET labels = labels - 1 WHERE class_id = OLD.class_id; END""",
]
SQLITE_DROPS = ["current_labels_sets_insert", "current_labels_sets_update", "current_labels_sets_delete",
                "current_label_classes_counts_insert", "current_label_classes_counts_delete"]

# PostgreSQL: one statement per statement over the transition tables (as 0011-0014).
_PG_COUNTS = """
    UPDATE class_counts SET labels = labels + delta.n
    FROM (SELECT class_id, sum(n) AS n FROM ({rows}) AS moves GROUP BY class_id) AS delta
    WHERE class_counts.class_id = delta.class_id AND delta.n <> 0"""
_PG_SETS_FROM = ("INSERT INTO current_label_classes (image_id, class_id, confidence) "
                 "SELECT n.image_id, l.class_id, l.confidence FROM new_rows n "
                 "JOIN label_event_classes l ON l.event_id = n.event_id WHERE n.multi")
_PG_SETS_CLEAR = "DELETE FROM current_label_classes c USING old_rows o WHERE c.image_id = o.image_id AND o.multi"
PG_STATEMENTS = [
    """CREATE OR REPLACE FUNCTION loupe_images_labelled_set() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
           UPDATE images SET labelled = (n.class_id IS NOT NULL OR n.multi) FROM new_rows AS n
           WHERE images.id = n.image_id AND images.labelled IS DISTINCT FROM (n.class_id IS NOT NULL OR n.multi);
           RETURN NULL;
       END $$""",
    f"""CREATE FUNCTION loupe_current_sets_insert() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {_PG_SETS_FROM}; RETURN NULL; END $$""",
    f"""CREATE FUNCTION loupe_current_sets_update() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {_PG_SETS_CLEAR}; {_PG_SETS_FROM}; RETURN NULL; END $$""",
    f"""CREATE FUNCTION loupe_current_sets_delete() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {_PG_SETS_CLEAR}; RETURN NULL; END $$""",
    f"""CREATE FUNCTION loupe_set_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {_PG_COUNTS.format(rows="SELECT class_id, 1 AS n FROM new_rows")}; RETURN NULL; END $$""",
    f"""CREATE FUNCTION loupe_set_counts_delete() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {_PG_COUNTS.format(rows="SELECT class_id, -1 AS n FROM old_rows")}; RETURN NULL; END $$""",
    "CREATE TRIGGER current_labels_sets_insert AFTER INSERT ON current_labels "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION loupe_current_sets_insert()",
    # The old rows are cleared first, so an update that keeps an image's set rewrites it: counts net 0.
    "CREATE TRIGGER current_labels_sets_update AFTER UPDATE ON current_labels "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION loupe_current_sets_update()",
    "CREATE TRIGGER current_labels_sets_delete AFTER DELETE ON current_labels "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION loupe_current_sets_delete()",
    "CREATE TRIGGER current_label_classes_counts_insert AFTER INSERT ON current_label_classes "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION loupe_set_counts_insert()",
    "CREATE TRIGGER current_label_classes_counts_delete AFTER DELETE ON current_label_classes "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION loupe_set_counts_delete()",
]
PG_DROPS = [
    "DROP TRIGGER IF EXISTS current_labels_sets_insert ON current_labels",
    "DROP TRIGGER IF EXISTS current_labels_sets_update ON current_labels",
    "DROP TRIGGER IF EXISTS current_labels_sets_delete ON current_labels",
    "DROP TRIGGER IF EXISTS current_label_classes_counts_insert ON current_label_classes",
    "DROP TRIGGER IF EXISTS current_label_classes_counts_delete ON current_label_classes",
    *(f"DROP FUNCTION IF EXISTS {f}()" for f in ("loupe_current_sets_insert", "loupe_current_sets_update",
                                                  "loupe_current_sets_delete", "loupe_set_counts_insert",
                                                  "loupe_set_counts_delete")),
    """CREATE OR REPLACE FUNCTION loupe_images_labelled_set() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
           UPDATE images SET labelled = (n.class_id IS NOT NULL) FROM new_rows AS n
           WHERE images.id = n.image_id AND images.labelled IS DISTINCT FROM (n.class_id IS NOT NULL);
           RETURN NULL;
       END $$""",
]


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _sqlite_append_only(table: str) -> None:
    for action in ("UPDATE", "DELETE"):
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action.lower()}")
        op.execute(f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                   f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END")


def _items_class(*, nullable: bool) -> None:
    if _sqlite():
        with op.batch_alter_table('snapshot_items', recreate='always',
                                  table_kwargs={"sqlite_with_rowid": False}) as batch_op:
            batch_op.alter_column('class_id', existing_type=sa.Integer(), nullable=nullable)
    else:
        op.alter_column('snapshot_items', 'class_id', existing_type=sa.Integer(), nullable=nullable)


def _false():
    return sa.text('0') if _sqlite() else sa.false()


def upgrade() -> None:
    sqlite = _sqlite()
    op.add_column('taxonomy_versions', sa.Column('mode', sa.String(length=20), nullable=False,
                                                 server_default='single-label'))
    op.add_column('label_events', sa.Column('multi', sa.Boolean(), nullable=False, server_default=_false()))
    op.add_column('current_labels', sa.Column('multi', sa.Boolean(), nullable=False, server_default=_false()))
    op.create_table(
        'label_event_classes',
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('class_id', sa.Integer(), nullable=False),
        sa.Column('confidence', sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(['event_id'], ['label_events.id'],
                                name=op.f('fk_label_event_classes_event_id_label_events')),
        sa.ForeignKeyConstraint(['class_id'], ['classes.id'], name=op.f('fk_label_event_classes_class_id_classes')),
        sa.PrimaryKeyConstraint('event_id', 'class_id', name=op.f('pk_label_event_classes')),
    )
    op.create_index('ix_label_event_classes_class_id', 'label_event_classes', ['class_id'])
    op.create_table(
        'current_label_classes',
        sa.Column('image_id', sa.Integer(), nullable=False),
        sa.Column('class_id', sa.Integer(), nullable=False),
        sa.Column('confidence', sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_current_label_classes_image_id_images')),
        sa.ForeignKeyConstraint(['class_id'], ['classes.id'],
                                name=op.f('fk_current_label_classes_class_id_classes')),
        sa.PrimaryKeyConstraint('image_id', 'class_id', name=op.f('pk_current_label_classes')),
    )
    op.create_index('ix_current_label_classes_class_id_image_id', 'current_label_classes', ['class_id', 'image_id'])
    _items_class(nullable=True)
    if sqlite:
        for sql in SQLITE_TRIGGERS:
            op.execute(sql)
        for table in (APPEND_ONLY, "snapshot_items"):
            _sqlite_append_only(table)
        return
    for sql in PG_STATEMENTS:
        op.execute(sql)
    for action in ("UPDATE", "DELETE"):
        op.execute(f"CREATE TRIGGER {APPEND_ONLY}_no_{action.lower()} BEFORE {action} ON {APPEND_ONLY} "
                   "FOR EACH ROW EXECUTE FUNCTION loupe_append_only()")
    op.execute(f"CREATE TRIGGER {APPEND_ONLY}_no_truncate BEFORE TRUNCATE ON {APPEND_ONLY} "
               "FOR EACH STATEMENT EXECUTE FUNCTION loupe_append_only()")


def downgrade() -> None:
    """Back to one class per label: refused while any label event carries a set (it would lose them)."""
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT count(*) FROM label_events WHERE multi")).scalar():
        raise RuntimeError("labels with several classes exist; a downgrade below 0015 would lose them")
    sqlite = _sqlite()
    _items_class(nullable=False)
    if sqlite:
        _sqlite_append_only("snapshot_items")
        for name in SQLITE_DROPS + [f"{APPEND_ONLY}_no_update", f"{APPEND_ONLY}_no_delete"]:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        for sql in SQLITE_TRIGGERS[:2]:
            op.execute(sql)
        op.execute("""CREATE TRIGGER current_labels_labelled_insert AFTER INSERT ON current_labels
           BEGIN UPDATE images SET labelled = (NEW.class_id IS NOT NULL) WHERE id = NEW.image_id; END""")
        op.execute("""CREATE TRIGGER current_labels_labelled_update AFTER UPDATE OF class_id ON current_labels
           WHEN (OLD.class_id IS NULL) != (NEW.class_id IS NULL)
           BEGIN UPDATE images SET labelled = (NEW.class_id IS NOT NULL) WHERE id = NEW.image_id; END""")
    else:
        for action in ("update", "delete", "truncate"):
            op.execute(f"DROP TRIGGER IF EXISTS {APPEND_ONLY}_no_{action} ON {APPEND_ONLY}")
        for sql in PG_DROPS:
            op.execute(sql)
    op.drop_index('ix_current_label_classes_class_id_image_id', table_name='current_label_classes')
    op.drop_table('current_label_classes')
    op.drop_index('ix_label_event_classes_class_id', table_name='label_event_classes')
    op.drop_table('label_event_classes')
    for table in ('current_labels', 'label_events', 'taxonomy_versions'):
        column = 'mode' if table == 'taxonomy_versions' else 'multi'
        if sqlite:
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        else:
            op.drop_column(table, column)
