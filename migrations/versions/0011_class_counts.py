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

from alembic import op
import sqlalchemy as sa


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

PG_STATEMENTS = [
    """CREATE OR REPLACE FUNCTION loupe_class_counts_row() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
           INSERT INTO class_counts (class_id, labels) VALUES (NEW.id, 0);
           RETURN NULL;
       END $$""",
    f"""CREATE OR REPLACE FUNCTION loupe_class_counts() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP IN ('UPDATE', 'DELETE') THEN {_change('OLD', '-')}; END IF;
            IF TG_OP IN ('UPDATE', 'INSERT') THEN {_change('NEW', '+')}; END IF;
            RETURN NULL;
        END $$""",
    "CREATE TRIGGER classes_counts_insert AFTER INSERT ON classes "
    "FOR EACH ROW EXECUTE FUNCTION loupe_class_counts_row()",
    "CREATE TRIGGER current_labels_counts_insert_delete AFTER INSERT OR DELETE ON current_labels "
    "FOR EACH ROW EXECUTE FUNCTION loupe_class_counts()",
    """CREATE TRIGGER current_labels_counts_update AFTER UPDATE OF class_id ON current_labels
       FOR EACH ROW WHEN (OLD.class_id IS DISTINCT FROM NEW.class_id) EXECUTE FUNCTION loupe_class_counts()""",
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
        op.execute("DROP TRIGGER IF EXISTS current_labels_counts_insert_delete ON current_labels")
        op.execute("DROP TRIGGER IF EXISTS current_labels_counts_update ON current_labels")
        op.execute("DROP FUNCTION IF EXISTS loupe_class_counts()")
        op.execute("DROP FUNCTION IF EXISTS loupe_class_counts_row()")
    op.drop_table('class_counts')
