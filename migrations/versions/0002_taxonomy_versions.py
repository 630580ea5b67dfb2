"""taxonomy versions: class revisions, examples, flags

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Classes made before this revision get their first revision row from the
classes table (no rename or redefinition existed before it).
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('class_revisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('class_id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['class_id'], ['classes.id'], name=op.f('fk_class_revisions_class_id_classes')),
    sa.ForeignKeyConstraint(['version_id'], ['taxonomy_versions.id'], name=op.f('fk_class_revisions_version_id_taxonomy_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_class_revisions'))
    )
    with op.batch_alter_table('class_revisions', schema=None) as batch_op:
        batch_op.create_index('ix_class_revisions_class_id_version_id', ['class_id', 'version_id'], unique=False)

    op.create_table('version_label_counts',
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('class_id', sa.Integer(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['class_id'], ['classes.id'], name=op.f('fk_version_label_counts_class_id_classes')),
    sa.ForeignKeyConstraint(['version_id'], ['taxonomy_versions.id'], name=op.f('fk_version_label_counts_version_id_taxonomy_versions')),
    sa.PrimaryKeyConstraint('version_id', 'class_id', name=op.f('pk_version_label_counts'))
    )
    op.create_table('class_examples',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('class_id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('added_version_id', sa.Integer(), nullable=False),
    sa.Column('removed_version_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['added_version_id'], ['taxonomy_versions.id'], name=op.f('fk_class_examples_added_version_id_taxonomy_versions')),
    sa.ForeignKeyConstraint(['class_id'], ['classes.id'], name=op.f('fk_class_examples_class_id_classes')),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_class_examples_image_id_images')),
    sa.ForeignKeyConstraint(['removed_version_id'], ['taxonomy_versions.id'], name=op.f('fk_class_examples_removed_version_id_taxonomy_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_class_examples'))
    )
    with op.batch_alter_table('class_examples', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_class_examples_class_id'), ['class_id'], unique=False)

    op.create_table('flags',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('suggested_class_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('created_version_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('resolved_at', sa.DateTime(), nullable=True),
    sa.Column('resolution', sa.String(length=20), nullable=True),
    sa.Column('resolution_event_id', sa.Integer(), nullable=True),
    sa.Column('resolved_by', sa.String(length=100), nullable=True),
    sa.ForeignKeyConstraint(['created_version_id'], ['taxonomy_versions.id'], name=op.f('fk_flags_created_version_id_taxonomy_versions')),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_flags_image_id_images')),
    sa.ForeignKeyConstraint(['resolution_event_id'], ['label_events.id'], name=op.f('fk_flags_resolution_event_id_label_events')),
    sa.ForeignKeyConstraint(['suggested_class_id'], ['classes.id'], name=op.f('fk_flags_suggested_class_id_classes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_flags'))
    )
    with op.batch_alter_table('flags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_flags_image_id'), ['image_id'], unique=False)
        batch_op.create_index('ix_flags_status_kind', ['status', 'kind'], unique=False)

    op.execute(
        "INSERT INTO class_revisions (class_id, version_id, name, description) "
        "SELECT id, created_version_id, name, description FROM classes"
    )


def downgrade() -> None:
    with op.batch_alter_table('flags', schema=None) as batch_op:
        batch_op.drop_index('ix_flags_status_kind')
        batch_op.drop_index(batch_op.f('ix_flags_image_id'))

    op.drop_table('flags')
    with op.batch_alter_table('class_examples', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_class_examples_class_id'))

    op.drop_table('class_examples')
    with op.batch_alter_table('class_revisions', schema=None) as batch_op:
        batch_op.drop_index('ix_class_revisions_class_id_version_id')

    op.drop_table('class_revisions')
    op.drop_table('version_label_counts')
