"""source_counts: images, labelled, excluded and waiting per source, kept by triggers

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

The overview counted every image and joined every current label per request
(0.8 s at a million images), and the review page counted all images to know
whether its pHash cache was current (0.2 s). One row per source now holds
those numbers; triggers on images keep it exact for every writer (imports,
label saves through images.labelled, exclusions, raw SQL), so no code path can
forget it. "waiting" is the unlabelled queue: neither labelled nor excluded.

A later batch_alter_table('images') on SQLite copies the table anew and loses
its triggers: such a migration must create these again.
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# One term per column, for the row of image X (OLD or NEW): how much it adds to its source.
ADD = ("images = images + 1, labelled = labelled + {b}(X.labelled), excluded = excluded + {b}(X.excluded), "
       "waiting = waiting + {b}(NOT X.labelled AND NOT X.excluded)")
SUBTRACT = ADD.replace("+", "-")
SQLITE_INT, PG_INT = "", "int4"  # SQLite's booleans are 0 / 1 already
CHANGED = ("OLD.labelled IS NOT NEW.labelled OR OLD.excluded IS NOT NEW.excluded "
           "OR OLD.source_id IS NOT NEW.source_id")


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _update(change: str, row: str, integer: str) -> str:
    return (f"UPDATE source_counts SET {change.format(b=integer).replace('X.', row + '.')} "
            f"WHERE source_id = {row}.source_id")


def _sqlite_triggers() -> list[str]:
    add_new, sub_old = _update(ADD, "NEW", SQLITE_INT), _update(SUBTRACT, "OLD", SQLITE_INT)
    return [
        """CREATE TRIGGER sources_counts_insert AFTER INSERT ON sources
           BEGIN INSERT INTO source_counts (source_id, images, labelled, excluded, waiting)
                 VALUES (NEW.id, 0, 0, 0, 0); END""",
        f"CREATE TRIGGER images_counts_insert AFTER INSERT ON images BEGIN {add_new}; END",
        f"CREATE TRIGGER images_counts_delete AFTER DELETE ON images BEGIN {sub_old}; END",
        f"""CREATE TRIGGER images_counts_update AFTER UPDATE OF labelled, excluded, source_id ON images
            WHEN {CHANGED} BEGIN {sub_old}; {add_new}; END""",
    ]


def _pg_statements() -> list[str]:
    add_new, sub_old = _update(ADD, "NEW", PG_INT), _update(SUBTRACT, "OLD", PG_INT)
    return [
        """CREATE OR REPLACE FUNCTION loupe_source_counts_row() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
               INSERT INTO source_counts (source_id, images, labelled, excluded, waiting)
               VALUES (NEW.id, 0, 0, 0, 0);
               RETURN NULL;
           END $$""",
        f"""CREATE OR REPLACE FUNCTION loupe_source_counts() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP IN ('UPDATE', 'DELETE') THEN {sub_old}; END IF;
                IF TG_OP IN ('UPDATE', 'INSERT') THEN {add_new}; END IF;
                RETURN NULL;
            END $$""",
        "CREATE TRIGGER sources_counts_insert AFTER INSERT ON sources "
        "FOR EACH ROW EXECUTE FUNCTION loupe_source_counts_row()",
        "CREATE TRIGGER images_counts_insert_delete AFTER INSERT OR DELETE ON images "
        "FOR EACH ROW EXECUTE FUNCTION loupe_source_counts()",
        f"""CREATE TRIGGER images_counts_update AFTER UPDATE OF labelled, excluded, source_id ON images
            FOR EACH ROW WHEN ({CHANGED.replace(' IS NOT ', ' IS DISTINCT FROM ')})
            EXECUTE FUNCTION loupe_source_counts()""",
    ]


def upgrade() -> None:
    sqlite = _sqlite()
    op.create_table(
        'source_counts',
        sa.Column('source_id', sa.Integer(), nullable=False),
        sa.Column('images', sa.Integer(), nullable=False),
        sa.Column('labelled', sa.Integer(), nullable=False),
        sa.Column('excluded', sa.Integer(), nullable=False),
        sa.Column('waiting', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['source_id'], ['sources.id'], name=op.f('fk_source_counts_source_id_sources'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('source_id', name=op.f('pk_source_counts')),
    )
    integer = SQLITE_INT if sqlite else PG_INT
    op.execute(f"""
        INSERT INTO source_counts (source_id, images, labelled, excluded, waiting)
        SELECT sources.id, count(images.id), coalesce(sum({integer}(images.labelled)), 0),
               coalesce(sum({integer}(images.excluded)), 0),
               coalesce(sum({integer}(NOT images.labelled AND NOT images.excluded)), 0)
        FROM sources LEFT JOIN images ON images.source_id = sources.id GROUP BY sources.id
    """)
    for sql in _sqlite_triggers() if sqlite else _pg_statements():
        op.execute(sql)


def downgrade() -> None:
    if _sqlite():
        for name in ("sources_counts_insert", "images_counts_insert", "images_counts_delete", "images_counts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        op.execute("DROP TRIGGER IF EXISTS sources_counts_insert ON sources")
        op.execute("DROP TRIGGER IF EXISTS images_counts_insert_delete ON images")
        op.execute("DROP TRIGGER IF EXISTS images_counts_update ON images")
        op.execute("DROP FUNCTION IF EXISTS loupe_source_counts()")
        op.execute("DROP FUNCTION IF EXISTS loupe_source_counts_row()")
    op.drop_table('source_counts')
