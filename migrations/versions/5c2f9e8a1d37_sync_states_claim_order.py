"""sync states: the claim order (oldest pending first) in the destination and status index

Revision ID: 5c2f9e8a1d37
Revises: 689be2b9417e
Create Date: 2026-11-23 21:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


revision = '5c2f9e8a1d37'
down_revision = '689be2b9417e'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('sync_states', schema=None) as batch_op:
        batch_op.create_index('ix_sync_states_destination_id_status_id', ['destination_id', 'status', 'id'], unique=False)
        batch_op.drop_index('ix_sync_states_destination_id_status')


def downgrade():
    with op.batch_alter_table('sync_states', schema=None) as batch_op:
        batch_op.create_index('ix_sync_states_destination_id_status', ['destination_id', 'status'], unique=False)
        batch_op.drop_index('ix_sync_states_destination_id_status_id')
