"""sso, logins and billing

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 23:28:28.521686
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('billing_accounts',
    sa.Column('org_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('email_ci', sa.Text(), nullable=False),
    sa.Column('member_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('first_login_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('first_login_event_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('seat_active', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('org_id', 'email_ci'),
    sa.UniqueConstraint('first_login_event_id')
    )
    op.create_table('pending_logins',
    sa.Column('org_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('email_ci', sa.Text(), nullable=False),
    sa.Column('event_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('logged_in_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('method', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('org_id', 'email_ci')
    )
    op.create_table('saml_seen_assertions',
    sa.Column('org_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('assertion_id', sa.Text(), nullable=False),
    sa.Column('not_on_or_after', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('org_id', 'assertion_id')
    )
    op.create_table('service_tokens',
    sa.Column('token_hash', sa.LargeBinary(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('token_hash')
    )
    op.create_table('sso_configs',
    sa.Column('org_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('protocol', sa.Text(), nullable=False),
    sa.Column('config', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('org_id', 'protocol')
    )
    op.create_table('sso_states',
    sa.Column('state', sa.Text(), nullable=False),
    sa.Column('org_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('protocol', sa.Text(), nullable=False),
    sa.Column('data', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('state')
    )


def downgrade() -> None:
    op.drop_table('sso_states')
    op.drop_table('sso_configs')
    op.drop_table('service_tokens')
    op.drop_table('saml_seen_assertions')
    op.drop_table('pending_logins')
    op.drop_table('billing_accounts')
