"""events: the sending domain, by which complaint rates are judged (RULES.md R-MBP-4)

Revision ID: f793209b2cc2
Revises: 5c2f9e8a1d37
Create Date: 2026-11-23 23:38:54.151545

"""
from alembic import op
import sqlalchemy as sa


revision = 'f793209b2cc2'
down_revision = '5c2f9e8a1d37'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sender_domain', sa.String(length=255), nullable=True))


def downgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('sender_domain')
