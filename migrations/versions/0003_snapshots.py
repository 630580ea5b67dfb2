"""snapshots: frozen datasets with one row per image

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

Snapshots and their items are append-only, like label events: SQLite triggers
refuse UPDATE and DELETE, so a snapshot a model was trained on never changes.
snapshot_items is a WITHOUT ROWID table keyed by (snapshot, image): one b-tree,
so freezing 100,000 images writes less and reading a snapshot reads it in order.
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

APPEND_ONLY = ("snapshots", "snapshot_items")


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


# PostgreSQL: one trigger function for every append-only table (SQLite inlines RAISE in each trigger).
# restrict_violation is an integrity error, as SQLite's RAISE(ABORT) is.
PG_APPEND_ONLY = """
CREATE OR REPLACE FUNCTION loupe_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$
"""


def _append_only(tables) -> None:
    if _sqlite():
        for table in tables:
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )
        return
    op.execute(PG_APPEND_ONLY)
    for table in tables:
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                       f"FOR EACH ROW EXECUTE FUNCTION loupe_append_only()")
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION loupe_append_only()")


def _drop_append_only(tables) -> None:
    sqlite = _sqlite()
    for table in tables:
        for action in ("update", "delete") if sqlite else ("update", "delete", "truncate"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}" + ("" if sqlite else f" ON {table}"))


def upgrade() -> None:
    op.create_table('snapshots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('taxonomy_version_id', sa.Integer(), nullable=False),
    sa.Column('filter', sa.JSON(), nullable=False),
    sa.Column('split', sa.JSON(), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('classes', sa.JSON(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['taxonomy_version_id'], ['taxonomy_versions.id'], name=op.f('fk_snapshots_taxonomy_version_id_taxonomy_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_snapshots')),
    sa.UniqueConstraint('name', name=op.f('uq_snapshots_name'))
    )
    with op.batch_alter_table('snapshots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_snapshots_hash'), ['hash'], unique=False)

    op.create_table('snapshot_items',
    sa.Column('snapshot_id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('label_event_id', sa.Integer(), nullable=False),
    sa.Column('class_id', sa.Integer(), nullable=False),
    sa.Column('split', sa.String(length=5), nullable=False),
    sa.Column('fold', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['class_id'], ['classes.id'], name=op.f('fk_snapshot_items_class_id_classes')),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_snapshot_items_image_id_images')),
    sa.ForeignKeyConstraint(['label_event_id'], ['label_events.id'], name=op.f('fk_snapshot_items_label_event_id_label_events')),
    sa.ForeignKeyConstraint(['snapshot_id'], ['snapshots.id'], name=op.f('fk_snapshot_items_snapshot_id_snapshots')),
    sa.PrimaryKeyConstraint('snapshot_id', 'image_id', name=op.f('pk_snapshot_items')),
    sqlite_with_rowid=False,
    )

    _append_only(APPEND_ONLY)


def downgrade() -> None:
    _drop_append_only(APPEND_ONLY)
    op.drop_table('snapshot_items')
    with op.batch_alter_table('snapshots', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_snapshots_hash'))

    op.drop_table('snapshots')
