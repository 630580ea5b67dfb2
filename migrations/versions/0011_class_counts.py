"""class_counts: current labels per class, kept by triggers

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03

The taxonomy page and /api/taxonomy grouped every current label per request
(23-41 ms at a million images, growing with them). One row per class now
holds its count of current labels; triggers on current_labels keep it exact
for every writer (label saves, bulk labels and their undo, merges, splits,
retires, raw SQL), as source_counts' triggers do for sources (0008).

A later batch_alter_table('current_labels') on SQLite copies the table anew
and loses its triggers: such a migration must create these again.
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _change(row: str, sign: str) -> str:
    return f"UPDATE class_counts SET labels = labels {sign} 1 WHERE class_id = {row}.class_id"


SQLITE_TRIGGERS = [
    """CREATE TRIGGER classes_counts_insert AFTER INSERT ON classes
       BEGIN INSERT INTO class_counts (class_id, labels) VALUES (NEW.id, 0); END""",
    f"CREATE TRIGGER current_labels_counts_insert AFTER INSERT ON current_labels BEGIN {_change('NEW', '+')}; END",
    f"CREATE TRIGGER current_labels_counts_delete AFTER DELETE ON current_labels BEGIN {_change('OLD', '-')}; END",
    f"""CREATE TRIGGER current_labels_counts_update AFTER UPDATE OF class_id ON current_labels
        WHEN OLD.class_id IS NOT NEW.class_id BEGIN {_change('OLD', '-')}; {_change('NEW', '+')}; END""",
]

# PostgreSQL: one UPDATE per statement, from its transition tables: a set-based write (a merge moving 500,000
# labels) updates each class's counter once, not once per label (each of those leaves a dead row version).
_PG_APPLY = """
    UPDATE class_counts SET labels = labels + delta.n
    FROM (SELECT class_id, sum(n) AS n FROM ({rows}) AS moves GROUP BY class_id) AS delta
    WHERE class_counts.class_id = delta.class_id AND delta.n <> 0"""
PG_STATEMENTS = [
    """CREATE OR REPLACE FUNCTION loupe_class_counts_row() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
           INSERT INTO class_counts (class_id, labels) VALUES (NEW.id, 0);
           RETURN NULL;
       END $$""",
    f"""CREATE OR REPLACE FUNCTION loupe_class_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {_PG_APPLY.format(rows="SELECT class_id, 1 AS n FROM new_rows")}; RETURN NULL; END $$""",
    f"""CREATE OR REPLACE FUNCTION loupe_class_counts_delete() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {_PG_APPLY.format(rows="SELECT class_id, -1 AS n FROM old_rows")}; RETURN NULL; END $$""",
    f"""CREATE OR REPLACE FUNCTION loupe_class_counts_update() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {_PG_APPLY.format(rows="SELECT class_id, -1 AS n FROM old_rows UNION ALL "
                                     "SELECT class_id, 1 AS n FROM new_rows")}; RETURN NULL; END $$""",
    "CREATE TRIGGER classes_counts_insert AFTER INSERT ON classes "
    "FOR EACH ROW EXECUTE FUNCTION loupe_class_counts_row()",
    "CREATE TRIGGER current_labels_counts_insert AFTER INSERT ON current_labels "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION loupe_class_counts_insert()",
    "CREATE TRIGGER current_labels_counts_delete AFTER DELETE ON current_labels "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION loupe_class_counts_delete()",
    # (Transition tables rule out UPDATE OF class_id: every update is counted, a row whose class stayed nets 0.)
    "CREATE TRIGGER current_labels_counts_update AFTER UPDATE ON current_labels "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION loupe_class_counts_update()",
]


def upgrade() -> None:
    op.create_table(
        'class_counts',
        sa.Column('class_id', sa.Integer(), nullable=False),
        sa.Column('labels', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['class_id'], ['classes.id'], name=op.f('fk_class_counts_class_id_classes'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('class_id', name=op.f('pk_class_counts')),
    )
    op.execute("""
        INSERT INTO class_counts (class_id, labels)
        SELECT classes.id, count(current_labels.image_id)
        FROM classes LEFT JOIN current_labels ON current_labels.class_id = classes.id GROUP BY classes.id
    """)
    for sql in SQLITE_TRIGGERS if _sqlite() else PG_STATEMENTS:
        op.execute(sql)


def downgrade() -> None:
    if _sqlite():
        for name in ("classes_counts_insert", "current_labels_counts_insert", "current_labels_counts_delete",
                     "current_labels_counts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        op.execute("DROP TRIGGER IF EXISTS classes_counts_insert ON classes")
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS current_labels_counts_{name} ON current_labels")
            op.execute(f"DROP FUNCTION IF EXISTS loupe_class_counts_{name}()")
        op.execute("DROP FUNCTION IF EXISTS loupe_class_counts_row()")
    op.drop_table('class_counts')
