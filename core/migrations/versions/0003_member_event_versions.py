"""member event versions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 23:29:52.756878
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('members', sa.Column('version', sa.BigInteger(), server_default=sa.text('0'), nullable=False))


def downgrade() -> None:
    op.drop_column('members', 'version')
