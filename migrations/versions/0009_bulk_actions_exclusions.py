"""bulk actions and exclusion events: undoable selections, reversible exclusions with reasons

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

A bulk relabel wrote plain "manual" events with no trace of the selection, so
it could not be undone as one; an exclusion was only a flag's resolution and
images.excluded. Now bulk_actions holds each selection-wide decision (and its
undo, as a later row), bulk_label_items the event each image got and the one
it replaced, and exclusion_events every exclude / include with its reason.
All three are append-only like label_events.

New tables only: a batch_alter_table('images') would drop the source_counts
triggers of 0008. Images excluded before this revision get one event each, so
images.excluded is always the state of an image's latest exclusion event.
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

APPEND_ONLY = ("bulk_actions", "bulk_label_items", "exclusion_events")

# The same function as 0001's (restrict_violation, as SQLite's RAISE(ABORT) is an integrity error).
PG_APPEND_ONLY = """
CREATE OR REPLACE FUNCTION loupe_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$
"""


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _append_only() -> None:
    if _sqlite():
        for table in APPEND_ONLY:
            for action in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                           f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END")
        return
    op.execute(PG_APPEND_ONLY)
    for table in APPEND_ONLY:
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                       f"FOR EACH ROW EXECUTE FUNCTION loupe_append_only()")
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION loupe_append_only()")


def upgrade() -> None:
    op.create_table(
        'bulk_actions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('action', sa.String(length=20), nullable=False),
        sa.Column('undoes_id', sa.Integer(), nullable=True),
        sa.Column('class_id', sa.Integer(), nullable=True),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('annotator', sa.String(length=100), nullable=False),
        sa.Column('selection', sa.JSON(), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('skipped', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['class_id'], ['classes.id'], name=op.f('fk_bulk_actions_class_id_classes')),
        sa.ForeignKeyConstraint(['undoes_id'], ['bulk_actions.id'],
                                name=op.f('fk_bulk_actions_undoes_id_bulk_actions')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_bulk_actions')),
    )
    op.create_index(op.f('ix_bulk_actions_undoes_id'), 'bulk_actions', ['undoes_id'], unique=False)
    op.create_table(
        'bulk_label_items',
        sa.Column('action_id', sa.Integer(), nullable=False),
        sa.Column('image_id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('before_event_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['action_id'], ['bulk_actions.id'],
                                name=op.f('fk_bulk_label_items_action_id_bulk_actions')),
        sa.ForeignKeyConstraint(['before_event_id'], ['label_events.id'],
                                name=op.f('fk_bulk_label_items_before_event_id_label_events')),
        sa.ForeignKeyConstraint(['event_id'], ['label_events.id'],
                                name=op.f('fk_bulk_label_items_event_id_label_events')),
        sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_bulk_label_items_image_id_images')),
        sa.PrimaryKeyConstraint('action_id', 'image_id', name=op.f('pk_bulk_label_items')),
        sqlite_with_rowid=False,
    )
    op.create_index(op.f('ix_bulk_label_items_image_id'), 'bulk_label_items', ['image_id'], unique=False)
    op.create_table(
        'exclusion_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('image_id', sa.Integer(), nullable=False),
        sa.Column('excluded', sa.Boolean(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('annotator', sa.String(length=100), nullable=False),
        sa.Column('bulk_action_id', sa.Integer(), nullable=True),
        sa.Column('flag_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['bulk_action_id'], ['bulk_actions.id'],
                                name=op.f('fk_exclusion_events_bulk_action_id_bulk_actions')),
        sa.ForeignKeyConstraint(['flag_id'], ['flags.id'], name=op.f('fk_exclusion_events_flag_id_flags')),
        sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_exclusion_events_image_id_images')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_exclusion_events')),
    )
    op.create_index(op.f('ix_exclusion_events_bulk_action_id'), 'exclusion_events', ['bulk_action_id'], unique=False)
    op.create_index('ix_exclusion_events_image_id_id', 'exclusion_events', ['image_id', 'id'], unique=False)
    op.execute("""
        INSERT INTO exclusion_events (image_id, excluded, reason, annotator, created_at)
        SELECT id, excluded, 'excluded before exclusions were recorded as events', '', CURRENT_TIMESTAMP
        FROM images WHERE excluded ORDER BY id
    """)
    _append_only()


def downgrade() -> None:
    sqlite = _sqlite()
    for table in APPEND_ONLY:
        for action in ("update", "delete") if sqlite else ("update", "delete", "truncate"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}" + ("" if sqlite else f" ON {table}"))
    op.drop_index('ix_exclusion_events_image_id_id', table_name='exclusion_events')
    op.drop_index(op.f('ix_exclusion_events_bulk_action_id'), table_name='exclusion_events')
    op.drop_table('exclusion_events')
    op.drop_index(op.f('ix_bulk_label_items_image_id'), table_name='bulk_label_items')
    op.drop_table('bulk_label_items')
    op.drop_index(op.f('ix_bulk_actions_undoes_id'), table_name='bulk_actions')
    op.drop_table('bulk_actions')
