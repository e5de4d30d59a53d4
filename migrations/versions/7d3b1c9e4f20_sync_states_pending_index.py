"""sync states: the claim index holds only pending rows

Revision ID: 7d3b1c9e4f20
Revises: f793209b2cc2
Create Date: 2026-11-24 00:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


revision = '7d3b1c9e4f20'
down_revision = 'f793209b2cc2'
branch_labels = None
depends_on = None

PENDING_ROW = sa.text("status = 'pending'")


def upgrade():
    op.create_index('ix_sync_states_pending', 'sync_states', ['destination_id', 'id'], unique=False, sqlite_where=PENDING_ROW, postgresql_where=PENDING_ROW)
    op.drop_index('ix_sync_states_destination_id_status_id', table_name='sync_states')


def downgrade():
    op.create_index('ix_sync_states_destination_id_status_id', 'sync_states', ['destination_id', 'status', 'id'], unique=False)
    op.drop_index('ix_sync_states_pending', table_name='sync_states')
