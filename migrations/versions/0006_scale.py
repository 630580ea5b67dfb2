"""images.labelled and keyset indexes, for queues and grids at a million images

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22

"Unlabelled" used to be an anti-join (images without a current label). No
index serves an anti-join, so the labelling queue, which starts at the
oldest unlabelled image, walked every labelled image in front of it (the
first quarter of a million-image import, 200 ms). images.labelled mirrors
"has a current label with a class"; triggers on current_labels keep it true
for every writer (label saves, taxonomy migrations, raw SQL), so no code path
can forget it. The composite indexes end in the image id, so that a filter
plus "id > cursor ORDER BY id LIMIT n" is one index range on both databases
(SQLite's secondary indexes carry the rowid already; PostgreSQL's do not).
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

SQLITE_TRIGGERS = (
    """CREATE TRIGGER current_labels_labelled_insert AFTER INSERT ON current_labels
       BEGIN UPDATE images SET labelled = (NEW.class_id IS NOT NULL) WHERE id = NEW.image_id; END""",
    """CREATE TRIGGER current_labels_labelled_update AFTER UPDATE OF class_id ON current_labels
       WHEN (OLD.class_id IS NULL) != (NEW.class_id IS NULL)
       BEGIN UPDATE images SET labelled = (NEW.class_id IS NOT NULL) WHERE id = NEW.image_id; END""",
    """CREATE TRIGGER current_labels_labelled_delete AFTER DELETE ON current_labels
       BEGIN UPDATE images SET labelled = 0 WHERE id = OLD.image_id; END""",
)
PG_FUNCTION = """
CREATE OR REPLACE FUNCTION loupe_image_labelled() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE images SET labelled = false WHERE id = OLD.image_id AND labelled;
    ELSE
        UPDATE images SET labelled = (NEW.class_id IS NOT NULL)
        WHERE id = NEW.image_id AND labelled IS DISTINCT FROM (NEW.class_id IS NOT NULL);
    END IF;
    RETURN NULL;
END $$
"""


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    sqlite = _sqlite()
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('labelled', sa.Boolean(), nullable=False,
                                      server_default=sa.text('0') if sqlite else sa.false()))
    op.execute("UPDATE images SET labelled = " + ("1" if sqlite else "true") +
               " WHERE id IN (SELECT image_id FROM current_labels WHERE class_id IS NOT NULL)")
    if sqlite:
        for sql in SQLITE_TRIGGERS:
            op.execute(sql)
    else:
        op.execute(PG_FUNCTION)
        op.execute("CREATE TRIGGER current_labels_labelled AFTER INSERT OR DELETE OR UPDATE OF class_id "
                   "ON current_labels FOR EACH ROW EXECUTE FUNCTION loupe_image_labelled()")
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index('ix_images_source_id')
        batch_op.create_index('ix_images_source_id_id', ['source_id', 'id'], unique=False)
        batch_op.create_index('ix_images_labelled_id', ['labelled', 'id'], unique=False)
        batch_op.create_index('ix_images_source_id_labelled_id', ['source_id', 'labelled', 'id'], unique=False)
    with op.batch_alter_table('current_labels', schema=None) as batch_op:
        batch_op.drop_index('ix_current_labels_class_id')
        batch_op.create_index('ix_current_labels_class_id_image_id', ['class_id', 'image_id'], unique=False)


def downgrade() -> None:
    sqlite = _sqlite()
    with op.batch_alter_table('current_labels', schema=None) as batch_op:
        batch_op.drop_index('ix_current_labels_class_id_image_id')
        batch_op.create_index('ix_current_labels_class_id', ['class_id'], unique=False)
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index('ix_images_source_id_labelled_id')
        batch_op.drop_index('ix_images_labelled_id')
        batch_op.drop_index('ix_images_source_id_id')
        batch_op.create_index('ix_images_source_id', ['source_id'], unique=False)
    if sqlite:
        for action in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS current_labels_labelled_{action}")
    else:
        op.execute("DROP TRIGGER IF EXISTS current_labels_labelled ON current_labels")
        op.execute("DROP FUNCTION IF EXISTS loupe_image_labelled()")
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_column('labelled')
