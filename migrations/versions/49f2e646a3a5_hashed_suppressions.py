"""hashed suppressions: hashes of addresses from partners' opt-out files, never the addresses

Revision ID: 49f2e646a3a5
Revises: a40e406c035f
Create Date: 2026-11-23 20:11:09.408422

"""
from alembic import op
import sqlalchemy as sa


revision = '49f2e646a3a5'
down_revision = 'a40e406c035f'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('hashed_suppressions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('algorithm', sa.String(length=8), nullable=False),
    sa.Column('digest', sa.String(length=128), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("algorithm IN ('md5', 'sha256', 'sha512')", name=op.f('ck_hashed_suppressions_algorithm')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hashed_suppressions')),
    sa.UniqueConstraint('algorithm', 'digest', name=op.f('uq_hashed_suppressions_algorithm_digest'))
    )


def downgrade():
    op.drop_table('hashed_suppressions')
