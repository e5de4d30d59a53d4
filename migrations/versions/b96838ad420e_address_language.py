"""address language

Revision ID: b96838ad420e
Revises: d6ef13816b42
Create Date: 2026-11-23 16:47:22.904554

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b96838ad420e'
down_revision = 'd6ef13816b42'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('addresses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=8), nullable=True))



def downgrade():
    with op.batch_alter_table('addresses', schema=None) as batch_op:
        batch_op.drop_column('language')

