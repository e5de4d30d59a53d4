"""sync: destinations (marketing tools kept in step) and their outbox of suppressions to push

Revision ID: e8de368bd23c
Revises: 49f2e646a3a5
Create Date: 2026-11-23 20:35:19.269515

"""
from alembic import op
import sqlalchemy as sa


revision = 'e8de368bd23c'
down_revision = '49f2e646a3a5'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('destinations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('target', sa.String(length=255), nullable=True),
    sa.Column('list_slug', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('planned_through', sa.Integer(), server_default='0', nullable=False),
    sa.Column('planned_at', sa.DateTime(), nullable=True),
    sa.Column('pulled_at', sa.DateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_destinations')),
    sa.UniqueConstraint('name', name=op.f('uq_destinations_name'))
    )
    op.create_table('sync_states',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('destination_id', sa.Integer(), nullable=False),
    sa.Column('email_hash', sa.String(length=64), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('scope', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('changed_at', sa.DateTime(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=True),
    sa.Column('done_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("action IN ('suppress', 'lift')", name=op.f('ck_sync_states_action')),
    sa.CheckConstraint("status IN ('pending', 'accepted', 'refused')", name=op.f('ck_sync_states_status')),
    sa.ForeignKeyConstraint(['destination_id'], ['destinations.id'], name=op.f('fk_sync_states_destination_id_destinations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_states')),
    sa.UniqueConstraint('destination_id', 'email_hash', 'scope', name=op.f('uq_sync_states_destination_id_email_hash_scope'))
    )
    with op.batch_alter_table('sync_states', schema=None) as batch_op:
        batch_op.create_index('ix_sync_states_destination_id_status', ['destination_id', 'status'], unique=False)



def downgrade():
    with op.batch_alter_table('sync_states', schema=None) as batch_op:
        batch_op.drop_index('ix_sync_states_destination_id_status')

    op.drop_table('sync_states')
    op.drop_table('destinations')
