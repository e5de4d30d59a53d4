"""sync states: no foreign key on the destination

Checking each planned row against destinations was a third of a large plan on PostgreSQL;
removing a destination deletes its outbox rows itself (sync.remove_destination). On SQLite the
table is copied (batch mode): only the outbox, never a suppression.

Revision ID: 7aecf698f0f9
Revises: 7d3b1c9e4f20
Create Date: 2026-11-24 00:58:36.806068

"""
from alembic import op
import sqlalchemy as sa


revision = '7aecf698f0f9'
down_revision = '7d3b1c9e4f20'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('sync_states', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_sync_states_destination_id_destinations'), type_='foreignkey')


def downgrade():
    with op.batch_alter_table('sync_states', schema=None) as batch_op:
        batch_op.create_foreign_key(batch_op.f('fk_sync_states_destination_id_destinations'), 'destinations', ['destination_id'], ['id'], ondelete='CASCADE')
