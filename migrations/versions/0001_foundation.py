"""foundation: images, sources, taxonomy, label events

Revision ID: 0001
Revises: 
Create Date: 2026-11-21

Label events, taxonomy versions and taxonomy changes are append-only: SQLite
triggers refuse UPDATE and DELETE on them, so no code path can rewrite history.
On PostgreSQL the triggers call one PL/pgSQL function (and TRUNCATE is refused too).
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

APPEND_ONLY = ("label_events", "taxonomy_versions", "taxonomy_changes")
DEFAULT_TAGS = [("blurred", "b"), ("occluded", "o"), ("dark", "d"), ("odd angle", "a"), ("cluttered", "c")]


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _flag(value: bool):
    """A boolean server default: SQLite stores 0/1, PostgreSQL wants a boolean."""
    if _sqlite():
        return sa.text('1' if value else '0')
    return sa.true() if value else sa.false()


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
    op.create_table('sources',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sources')),
    sa.UniqueConstraint('name', name=op.f('uq_sources_name'))
    )
    op.create_table('tags',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('key', sa.String(length=1), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), server_default=_flag(True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tags')),
    sa.UniqueConstraint('name', name=op.f('uq_tags_name'))
    )
    op.create_table('taxonomy_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('author', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['taxonomy_versions.id'], name=op.f('fk_taxonomy_versions_parent_id_taxonomy_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_taxonomy_versions')),
    sa.UniqueConstraint('number', name=op.f('uq_taxonomy_versions_number'))
    )
    op.create_table('classes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('shortcut', sa.String(length=1), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('created_version_id', sa.Integer(), nullable=False),
    sa.Column('retired_version_id', sa.Integer(), nullable=True),
    sa.Column('replaced_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_version_id'], ['taxonomy_versions.id'], name=op.f('fk_classes_created_version_id_taxonomy_versions')),
    sa.ForeignKeyConstraint(['replaced_by_id'], ['classes.id'], name=op.f('fk_classes_replaced_by_id_classes')),
    sa.ForeignKeyConstraint(['retired_version_id'], ['taxonomy_versions.id'], name=op.f('fk_classes_retired_version_id_taxonomy_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_classes'))
    )
    with op.batch_alter_table('classes', schema=None) as batch_op:
        batch_op.create_index('uq_classes_active_name', ['name'], unique=True, sqlite_where=sa.text('retired_version_id IS NULL'), postgresql_where=sa.text('retired_version_id IS NULL'))
        batch_op.create_index('uq_classes_active_shortcut', ['shortcut'], unique=True, sqlite_where=sa.text('retired_version_id IS NULL AND shortcut IS NOT NULL'), postgresql_where=sa.text('retired_version_id IS NULL AND shortcut IS NOT NULL'))

    op.create_table('import_batches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('origin', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], name=op.f('fk_import_batches_source_id_sources')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_batches'))
    )
    op.create_table('taxonomy_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('op', sa.String(length=20), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['taxonomy_versions.id'], name=op.f('fk_taxonomy_changes_version_id_taxonomy_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_taxonomy_changes'))
    )
    with op.batch_alter_table('taxonomy_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_taxonomy_changes_version_id'), ['version_id'], unique=False)

    op.create_table('images',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('stored_path', sa.String(length=200), nullable=False),
    sa.Column('original_filename', sa.String(length=1000), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('format', sa.String(length=10), nullable=False),
    sa.Column('mode', sa.String(length=10), nullable=False),
    sa.Column('byte_size', sa.Integer(), nullable=False),
    sa.Column('phash', sa.BigInteger(), nullable=False),
    sa.Column('imported_at', sa.DateTime(), nullable=False),
    sa.Column('excluded', sa.Boolean(), server_default=_flag(False), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['import_batches.id'], name=op.f('fk_images_batch_id_import_batches')),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], name=op.f('fk_images_source_id_sources')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_images')),
    sa.UniqueConstraint('sha256', name=op.f('uq_images_sha256'))
    )
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_images_source_id'), ['source_id'], unique=False)

    op.create_table('label_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('class_id', sa.Integer(), nullable=True),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('annotator', sa.String(length=100), nullable=False),
    sa.Column('taxonomy_version_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('ms', sa.Integer(), nullable=True),
    sa.Column('reverts_event_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['class_id'], ['classes.id'], name=op.f('fk_label_events_class_id_classes')),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_label_events_image_id_images')),
    sa.ForeignKeyConstraint(['reverts_event_id'], ['label_events.id'], name=op.f('fk_label_events_reverts_event_id_label_events')),
    sa.ForeignKeyConstraint(['taxonomy_version_id'], ['taxonomy_versions.id'], name=op.f('fk_label_events_taxonomy_version_id_taxonomy_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_label_events'))
    )
    with op.batch_alter_table('label_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_label_events_class_id'), ['class_id'], unique=False)
        batch_op.create_index('ix_label_events_image_id_id', ['image_id', 'id'], unique=False)

    op.create_table('current_labels',
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('class_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['class_id'], ['classes.id'], name=op.f('fk_current_labels_class_id_classes')),
    sa.ForeignKeyConstraint(['event_id'], ['label_events.id'], name=op.f('fk_current_labels_event_id_label_events')),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_current_labels_image_id_images')),
    sa.PrimaryKeyConstraint('image_id', name=op.f('pk_current_labels'))
    )
    with op.batch_alter_table('current_labels', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_current_labels_class_id'), ['class_id'], unique=False)

    _append_only(APPEND_ONLY)

    tags = sa.table("tags", sa.column("name"), sa.column("key"), sa.column("position"), sa.column("active"))
    op.bulk_insert(
        tags,
        [
            {"name": name, "key": key, "position": i, "active": True}
            for i, (name, key) in enumerate(DEFAULT_TAGS)
        ],
    )


def downgrade() -> None:
    _drop_append_only(APPEND_ONLY)
    with op.batch_alter_table('current_labels', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_current_labels_class_id'))

    op.drop_table('current_labels')
    with op.batch_alter_table('label_events', schema=None) as batch_op:
        batch_op.drop_index('ix_label_events_image_id_id')
        batch_op.drop_index(batch_op.f('ix_label_events_class_id'))

    op.drop_table('label_events')
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_images_source_id'))

    op.drop_table('images')
    with op.batch_alter_table('taxonomy_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_taxonomy_changes_version_id'))

    op.drop_table('taxonomy_changes')
    op.drop_table('import_batches')
    with op.batch_alter_table('classes', schema=None) as batch_op:
        batch_op.drop_index('uq_classes_active_shortcut', sqlite_where=sa.text('retired_version_id IS NULL AND shortcut IS NOT NULL'))
        batch_op.drop_index('uq_classes_active_name', sqlite_where=sa.text('retired_version_id IS NULL'))

    op.drop_table('classes')
    op.drop_table('taxonomy_versions')
    op.drop_table('tags')
    op.drop_table('sources')
    if not _sqlite():
        op.execute("DROP FUNCTION IF EXISTS loupe_append_only()")
