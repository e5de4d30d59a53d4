"""events and last active: the normalised ESP event log, and the last active contact of an address

Revision ID: 3a57f4777380
Revises: b96838ad420e
Create Date: 2026-11-23 18:24:41.092797

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '3a57f4777380'
down_revision = 'b96838ad420e'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('provider_event_id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('raw_type', sa.String(length=100), nullable=False),
    sa.Column('email_hash', sa.String(length=64), nullable=True),
    sa.Column('bounce_class', sa.String(length=8), nullable=True),
    sa.Column('diagnostic', sa.Text(), nullable=True),
    sa.Column('message_id', sa.String(length=255), nullable=True),
    sa.Column('list_ref', sa.String(length=255), nullable=True),
    sa.Column('list_slug', sa.String(length=64), nullable=True),
    sa.Column('campaign', sa.String(length=255), nullable=True),
    sa.Column('url', sa.Text(), nullable=True),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('user_agent', sa.Text(), nullable=True),
    sa.Column('machine', sa.Boolean(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("bounce_class IN ('hard', 'soft', 'policy')", name=op.f('ck_events_bounce_class')),
    sa.CheckConstraint("type IN ('sent', 'delivered', 'deferred', 'bounced', 'dropped', 'opened', 'clicked', 'complained', 'unsubscribed', 'resubscribed', 'unknown')", name=op.f('ck_events_type')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events')),
    sa.UniqueConstraint('provider', 'provider_event_id', name=op.f('uq_events_provider_provider_event_id'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_email_hash_type_occurred_at', ['email_hash', 'type', 'occurred_at'], unique=False)

    with op.batch_alter_table('addresses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_active_at', sa.DateTime(), nullable=True))



def downgrade():
    with op.batch_alter_table('addresses', schema=None) as batch_op:
        batch_op.drop_column('last_active_at')

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_email_hash_type_occurred_at')

    op.drop_table('events')
