"""PostgreSQL: images.labelled and source_counts kept by statement-level triggers (one write per statement)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03

0006 (images.labelled) and 0008 (source_counts) keep their numbers with row
triggers: on PostgreSQL every label or image a statement touches updated one
of a few source_counts rows again, and each update of a row the same
transaction already updated leaves one more row version that the next update
must step over. A set-based write therefore grew with the square of its rows:
seeding 20,000 labelled images took 11 s and 100,000 took 131 s, against 2 s
and 13 s with the triggers below; a bulk label of a whole filter or a
taxonomy merge of many labels takes the same path. The triggers now run once
per statement over its transition tables (as class_counts' do since 0011):
current_labels sets images.labelled with one UPDATE ... FROM, and images adds
one delta per source. SQLite's row triggers update in place and stay (1M
images seed in about 20 s there).
"""

from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _moves(table: str, sign: str) -> str:
    """One row per image of a transition table: what it adds to (or with sign '-', takes from) its source."""
    return (f"SELECT source_id, {sign}1 AS images, {sign}int4(labelled) AS labelled, "
            f"{sign}int4(excluded) AS excluded, {sign}int4(NOT labelled AND NOT excluded) AS waiting FROM {table}")


_APPLY = """
    UPDATE source_counts SET images = source_counts.images + d.images,
           labelled = source_counts.labelled + d.labelled, excluded = source_counts.excluded + d.excluded,
           waiting = source_counts.waiting + d.waiting
    FROM (SELECT source_id, sum(images) AS images, sum(labelled) AS labelled, sum(excluded) AS excluded,
                 sum(waiting) AS waiting
          FROM ({rows}) AS moves GROUP BY source_id) AS d
    WHERE source_counts.source_id = d.source_id
      AND (d.images <> 0 OR d.labelled <> 0 OR d.excluded <> 0 OR d.waiting <> 0)"""

UPGRADE = [
    "DROP TRIGGER IF EXISTS images_counts_insert_delete ON images",
    "DROP TRIGGER IF EXISTS images_counts_update ON images",
    "DROP FUNCTION IF EXISTS loupe_source_counts()",
    "DROP TRIGGER IF EXISTS current_labels_labelled ON current_labels",
    "DROP FUNCTION IF EXISTS loupe_image_labelled()",
    f"""CREATE FUNCTION loupe_source_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {_APPLY.format(rows=_moves('new_rows', ''))}; RETURN NULL; END $$""",
    f"""CREATE FUNCTION loupe_source_counts_delete() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {_APPLY.format(rows=_moves('old_rows', '-'))}; RETURN NULL; END $$""",
    f"""CREATE FUNCTION loupe_source_counts_update() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {_APPLY.format(rows=_moves('old_rows', '-') + ' UNION ALL ' + _moves('new_rows', ''))};
        RETURN NULL; END $$""",
    """CREATE FUNCTION loupe_images_labelled_set() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
           UPDATE images SET labelled = (n.class_id IS NOT NULL) FROM new_rows AS n
           WHERE images.id = n.image_id AND images.labelled IS DISTINCT FROM (n.class_id IS NOT NULL);
           RETURN NULL;
       END $$""",
    """CREATE FUNCTION loupe_images_labelled_clear() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
           UPDATE images SET labelled = false FROM old_rows AS o WHERE images.id = o.image_id AND images.labelled;
           RETURN NULL;
       END $$""",
    # A trigger with transition tables takes one event and no column list: an update of any column of
    # images runs it, and a row whose source, labelled and excluded stayed nets 0 (no write).
    "CREATE TRIGGER images_counts_insert AFTER INSERT ON images REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION loupe_source_counts_insert()",
    "CREATE TRIGGER images_counts_delete AFTER DELETE ON images REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION loupe_source_counts_delete()",
    "CREATE TRIGGER images_counts_update AFTER UPDATE ON images REFERENCING OLD TABLE AS old_rows "
    "NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION loupe_source_counts_update()",
    "CREATE TRIGGER current_labels_labelled_insert AFTER INSERT ON current_labels "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION loupe_images_labelled_set()",
    "CREATE TRIGGER current_labels_labelled_update AFTER UPDATE ON current_labels "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION loupe_images_labelled_set()",
    "CREATE TRIGGER current_labels_labelled_delete AFTER DELETE ON current_labels "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION loupe_images_labelled_clear()",
]

# 0006's and 0008's row triggers, as they were.
_ADD = ("images = images + 1, labelled = labelled + int4(X.labelled), excluded = excluded + int4(X.excluded), "
        "waiting = waiting + int4(NOT X.labelled AND NOT X.excluded)")


def _row_update(change: str, row: str) -> str:
    return f"UPDATE source_counts SET {change.replace('X.', row + '.')} WHERE source_id = {row}.source_id"


DOWNGRADE = [
    "DROP TRIGGER IF EXISTS images_counts_insert ON images",
    "DROP TRIGGER IF EXISTS images_counts_delete ON images",
    "DROP TRIGGER IF EXISTS images_counts_update ON images",
    *(f"DROP TRIGGER IF EXISTS current_labels_labelled_{event} ON current_labels"
      for event in ("insert", "update", "delete")),
    *(f"DROP FUNCTION IF EXISTS {name}()" for name in (
        "loupe_source_counts_insert", "loupe_source_counts_delete", "loupe_source_counts_update",
        "loupe_images_labelled_set", "loupe_images_labelled_clear")),
    f"""CREATE FUNCTION loupe_source_counts() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP IN ('UPDATE', 'DELETE') THEN {_row_update(_ADD.replace('+', '-'), 'OLD')}; END IF;
            IF TG_OP IN ('UPDATE', 'INSERT') THEN {_row_update(_ADD, 'NEW')}; END IF;
            RETURN NULL;
        END $$""",
    "CREATE TRIGGER images_counts_insert_delete AFTER INSERT OR DELETE ON images "
    "FOR EACH ROW EXECUTE FUNCTION loupe_source_counts()",
    """CREATE TRIGGER images_counts_update AFTER UPDATE OF labelled, excluded, source_id ON images
       FOR EACH ROW WHEN (OLD.labelled IS DISTINCT FROM NEW.labelled OR OLD.excluded IS DISTINCT FROM NEW.excluded
                          OR OLD.source_id IS DISTINCT FROM NEW.source_id)
       EXECUTE FUNCTION loupe_source_counts()""",
    """CREATE FUNCTION loupe_image_labelled() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
           IF TG_OP = 'DELETE' THEN
               UPDATE images SET labelled = false WHERE id = OLD.image_id AND labelled;
           ELSE
               UPDATE images SET labelled = (NEW.class_id IS NOT NULL)
               WHERE id = NEW.image_id AND labelled IS DISTINCT FROM (NEW.class_id IS NOT NULL);
           END IF;
           RETURN NULL;
       END $$""",
    "CREATE TRIGGER current_labels_labelled AFTER INSERT OR DELETE OR UPDATE OF class_id "
    "ON current_labels FOR EACH ROW EXECUTE FUNCTION loupe_image_labelled()",
]


def upgrade() -> None:
    if not _sqlite():
        for sql in UPGRADE:
            op.execute(sql)


def downgrade() -> None:
    if not _sqlite():
        for sql in DOWNGRADE:
            op.execute(sql)
