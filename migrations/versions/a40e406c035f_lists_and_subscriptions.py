"""lists and subscriptions: a list's audience and customer-relationship exception, who is on it
and on what basis, and an address's role note and end of customer relationship

Revision ID: a40e406c035f
Revises: 3a57f4777380
Create Date: 2026-11-23 19:21:11.952993

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a40e406c035f'
down_revision = '3a57f4777380'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('subscriptions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('address_id', sa.Integer(), nullable=False),
    sa.Column('list_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('basis', sa.String(length=32), nullable=True),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('subscribed_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("basis IN ('consent', 'customer_relationship', 'b2b_role', 'legitimate_interest')", name=op.f('ck_subscriptions_basis')),
    sa.CheckConstraint("status IN ('subscribed', 'unsubscribed')", name=op.f('ck_subscriptions_status')),
    sa.ForeignKeyConstraint(['address_id'], ['addresses.id'], name=op.f('fk_subscriptions_address_id_addresses')),
    sa.ForeignKeyConstraint(['list_id'], ['mailing_lists.id'], name=op.f('fk_subscriptions_list_id_mailing_lists')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscriptions')),
    sa.UniqueConstraint('address_id', 'list_id', name=op.f('uq_subscriptions_address_id_list_id'))
    )
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.create_index('ix_subscriptions_list_id_status', ['list_id', 'status'], unique=False)

    with op.batch_alter_table('addresses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('role_note', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('relationship_ended_at', sa.DateTime(), nullable=True))

    with op.batch_alter_table('mailing_lists', schema=None) as batch_op:
        batch_op.add_column(sa.Column('audience', sa.String(length=16), server_default='b2b', nullable=False))
        batch_op.add_column(sa.Column('similar_products', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.create_check_constraint(op.f('ck_mailing_lists_audience'), "audience IN ('b2b', 'consumer')")


def downgrade():
    with op.batch_alter_table('mailing_lists', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_mailing_lists_audience'), type_='check')
        batch_op.drop_column('similar_products')
        batch_op.drop_column('audience')

    with op.batch_alter_table('addresses', schema=None) as batch_op:
        batch_op.drop_column('relationship_ended_at')
        batch_op.drop_column('role_note')

    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_index('ix_subscriptions_list_id_status')

    op.drop_table('subscriptions')