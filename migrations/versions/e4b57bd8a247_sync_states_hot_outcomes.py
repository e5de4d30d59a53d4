"""sync states: on PostgreSQL, no index of pending rows and pages half filled

Recording an outcome changed the status, which the pending rows' index named in its predicate,
so every accepted row was a new version in every index. With no index on the status and room
left in each page, PostgreSQL writes the new version beside the old one and no index entry (a
HOT update); its claims walk the primary key instead. The fill factor applies to pages written
from now on; rows already stored stay where they are. SQLite, which has no such updates, keeps
the index. Nothing but an index is dropped.

Revision ID: e4b57bd8a247
Revises: 7aecf698f0f9
Create Date: 2026-11-24 02:19:55.130927

"""
from alembic import op
import sqlalchemy as sa


revision = 'e4b57bd8a247'
down_revision = '7aecf698f0f9'
branch_labels = None
depends_on = None

PENDING_ROW = sa.text("status = 'pending'")


def upgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.drop_index('ix_sync_states_pending', table_name='sync_states')
    op.execute('ALTER TABLE sync_states SET (fillfactor = 50)')


def downgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute('ALTER TABLE sync_states RESET (fillfactor)')
    op.create_index('ix_sync_states_pending', 'sync_states', ['destination_id', 'id'], unique=False, postgresql_where=PENDING_ROW)
