"""addresses: room on each page for the counters' updates (PostgreSQL)

Revision ID: c4e1a7b9d2f6
Revises: 7aecf698f0f9
Create Date: 2026-11-24 02:20:00.000000

The new fill factor applies to the pages written from now on; the rows already stored move to
roomier pages as they are updated or when the table is next rewritten (VACUUM FULL, CLUSTER),
which this migration does not do: it would lock the register for as long as the copy takes.
SQLite has no fill factor, so nothing changes there.
"""
from alembic import op


revision = 'c4e1a7b9d2f6'
down_revision = '7aecf698f0f9'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE addresses SET (fillfactor = 85)')


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE addresses RESET (fillfactor)')
