"""scim audit trail

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 01:37:28.039215
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('scim_audit',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('org_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('method', sa.Text(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('query', sa.Text(), nullable=True),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('duration_ms', sa.Float(), nullable=False),
    sa.Column('user_agent', sa.Text(), nullable=True),
    sa.Column('request_id', sa.Text(), nullable=False),
    sa.Column('client_address', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_scim_audit_at_brin', 'scim_audit', ['at'], unique=False, postgresql_using='brin')
    op.create_index('ix_scim_audit_org_at', 'scim_audit', ['org_id', 'at', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_scim_audit_org_at', table_name='scim_audit')
    op.drop_index('ix_scim_audit_at_brin', table_name='scim_audit', postgresql_using='brin')
    op.drop_table('scim_audit')
