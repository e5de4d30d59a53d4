"""domain suppressions: a domain or its subdomains that must not be mailed, globally or on a list

Revision ID: 689be2b9417e
Revises: e8de368bd23c
Create Date: 2026-11-23 20:37:00.651182

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '689be2b9417e'
down_revision = 'e8de368bd23c'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('domain_suppressions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pattern', sa.String(length=255), nullable=False),
    sa.Column('scope', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.CheckConstraint("reason IN ('unsubscribed', 'complained', 'bounced', 'soft_bounced', 'objected', 'manual', 'imported', 'erased')", name=op.f('ck_domain_suppressions_reason')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_domain_suppressions')),
    sa.UniqueConstraint('pattern', 'scope', name=op.f('uq_domain_suppressions_pattern_scope'))
    )


def downgrade():
    """Domain suppressions are suppressions, never dropped by a migration: undoing this one
    needs an empty table."""
    held = op.get_bind().execute(sa.text("SELECT count(*) FROM domain_suppressions")).scalar()
    if held:
        raise RuntimeError(
            f"refusing to downgrade: the domain_suppressions table holds {held} rows; "
            "list them first (flask --app wsgi suppressions domains --all) and empty it by hand"
        )
    op.drop_table('domain_suppressions')
