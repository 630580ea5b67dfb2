"""jobs, epochs, logs, predictions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

Jobs are the only channel between the web app and the worker: the worker
claims a queued row, heartbeats into it, streams epochs and logs, and writes
predictions in the same transaction that marks the job finished.
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('snapshot_id', sa.Integer(), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('worker', sa.String(length=100), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('cancel_requested', sa.Boolean(),
              server_default=sa.text('0') if op.get_bind().dialect.name == 'sqlite' else sa.false(), nullable=False),
    sa.Column('progress', sa.Float(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('device', sa.String(length=20), nullable=True),
    sa.Column('metrics', sa.JSON(), nullable=True),
    sa.Column('final', sa.JSON(), nullable=True),
    sa.Column('notes', sa.JSON(), nullable=False),
    sa.Column('artifacts', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('claimed_at', sa.DateTime(), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['snapshot_id'], ['snapshots.id'], name=op.f('fk_jobs_snapshot_id_snapshots')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_status_id', ['status', 'id'], unique=False)

    op.create_table('job_epochs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('stage', sa.String(length=20), nullable=False),
    sa.Column('epoch', sa.Integer(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_epochs_job_id_jobs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_epochs'))
    )
    with op.batch_alter_table('job_epochs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_epochs_job_id'), ['job_id'], unique=False)

    op.create_table('job_logs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_logs_job_id_jobs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_logs'))
    )
    with op.batch_alter_table('job_logs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_logs_job_id'), ['job_id'], unique=False)

    op.create_table('predictions',
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=12), nullable=False),
    sa.Column('out_of_sample', sa.Boolean(), nullable=False),
    sa.Column('probs', sa.JSON(), nullable=False),
    sa.Column('margin', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_predictions_image_id_images')),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_predictions_job_id_jobs')),
    sa.PrimaryKeyConstraint('job_id', 'image_id', name=op.f('pk_predictions')),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.create_index('ix_predictions_image_id', ['image_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.drop_index('ix_predictions_image_id')

    op.drop_table('predictions')
    with op.batch_alter_table('job_logs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_logs_job_id'))

    op.drop_table('job_logs')
    with op.batch_alter_table('job_epochs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_epochs_job_id'))

    op.drop_table('job_epochs')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_status_id')

    op.drop_table('jobs')
