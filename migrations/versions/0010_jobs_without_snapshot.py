"""jobs without a snapshot: an embed job (or an analysis of one) needs no labels

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03

A pretrained backbone embeds every image, labelled or not, before anyone has
frozen a snapshot (that is when a diverse labelling order helps most), so
jobs.snapshot_id may now be empty. Train and predict jobs still always carry
one. jobs has no triggers, so SQLite's batch copy of the table loses nothing
(Alembic's own connection runs with foreign keys off, as batch mode needs).
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.alter_column('snapshot_id', existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM jobs WHERE snapshot_id IS NULL")
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.alter_column('snapshot_id', existing_type=sa.Integer(), nullable=False)
