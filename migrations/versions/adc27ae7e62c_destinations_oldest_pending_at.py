"""destinations: the moment of the oldest pending outbox row

/healthz reads a destination's lag from it: on PostgreSQL the outbox has no index of pending
rows any more (e4b57bd8a247), and finding the oldest read the destination's whole outbox. The
sync job lowers it with every row it makes pending and counts it again as a pass ends; here it
is counted once from the outbox as it stands. Only a column of destinations is added (or, on
the way down, dropped; on SQLite the destinations table is copied), never a suppression.

Revision ID: adc27ae7e62c
Revises: e4b57bd8a247
Create Date: 2026-11-24 04:37:00.834064

"""
from alembic import op
import sqlalchemy as sa


revision = 'adc27ae7e62c'
down_revision = 'e4b57bd8a247'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('destinations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('oldest_pending_at', sa.DateTime(), nullable=True))
    op.execute(
        "UPDATE destinations SET oldest_pending_at = ("
        "SELECT min(changed_at) FROM sync_states"
        " WHERE sync_states.destination_id = destinations.id AND status = 'pending')"
    )


def downgrade():
    with op.batch_alter_table('destinations', schema=None) as batch_op:
        batch_op.drop_column('oldest_pending_at')
