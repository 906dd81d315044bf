"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-28 23:13:08.011002
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dead_letters',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('consumer', sa.Text(), nullable=False),
    sa.Column('topic', sa.Text(), nullable=False),
    sa.Column('partition', sa.Integer(), nullable=False),
    sa.Column('offset', sa.BigInteger(), nullable=False),
    sa.Column('key', sa.Text(), nullable=True),
    sa.Column('value', sa.LargeBinary(), nullable=True),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('redriven_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('member_group_links',
    sa.Column('org_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('group_id', sa.Text(), nullable=False),
    sa.Column('scim_user_id', sa.Text(), nullable=False),
    sa.Column('present', sa.Boolean(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('org_id', 'group_id', 'scim_user_id')
    )
    op.create_table('member_groups',
    sa.Column('org_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('group_id', sa.Text(), nullable=False),
    sa.Column('display_name', sa.Text(), nullable=True),
    sa.Column('deleted', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('org_id', 'group_id')
    )
    op.create_table('orgs',
    sa.Column('id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('slug', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('manual_provisioning', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('sso_provisioning', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('scim_enabled', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('slug')
    )
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('topic', sa.Text(), nullable=False),
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id')
    )
    op.create_table('processed_events',
    sa.Column('consumer', sa.Text(), nullable=False),
    sa.Column('event_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('consumer', 'event_id')
    )
    op.create_table('scim_group_members',
    sa.Column('org_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('group_id', sa.Text(), nullable=False),
    sa.Column('member_id', sa.Text(), nullable=False),
    sa.Column('member_type', sa.Text(), server_default='User', nullable=False),
    sa.Column('display', sa.Text(), nullable=True),
    sa.Column('added_at', sa.DateTime(timezone=True), server_default=sa.text('clock_timestamp()'), nullable=False),
    sa.PrimaryKeyConstraint('org_id', 'group_id', 'member_id')
    )
    op.create_index('ix_scim_group_members_member', 'scim_group_members', ['org_id', 'member_id'], unique=False)
    op.create_table('members',
    sa.Column('id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('org_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('scim_user_id', sa.Text(), nullable=True),
    sa.Column('user_name', sa.Text(), nullable=True),
    sa.Column('email', sa.Text(), nullable=True),
    sa.Column('email_ci', sa.Text(), nullable=True),
    sa.Column('display_name', sa.Text(), nullable=True),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('seq', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('first_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('org_id', 'scim_user_id', name='ux_members_scim_user')
    )
    op.create_index('ix_members_org_email', 'members', ['org_id', 'email_ci'], unique=False)
    op.create_index('ix_members_org_status', 'members', ['org_id', 'status'], unique=False)
    op.create_table('scim_resources',
    sa.Column('org_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('resource_type', sa.Text(), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('data', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('user_name_ci', sa.Text(), nullable=True),
    sa.Column('external_id', sa.Text(), nullable=True),
    sa.Column('display_name_ci', sa.Text(), nullable=True),
    sa.Column('emails_ci', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('org_id', 'id')
    )
    op.create_index('ix_scim_resources_display_name', 'scim_resources', ['org_id', 'resource_type', 'display_name_ci'], unique=False)
    op.create_index('ix_scim_resources_emails', 'scim_resources', ['emails_ci'], unique=False, postgresql_using='gin')
    op.create_index('ix_scim_resources_external_id', 'scim_resources', ['org_id', 'resource_type', 'external_id'], unique=False)
    op.create_index('ix_scim_resources_type_id', 'scim_resources', ['org_id', 'resource_type', 'id'], unique=False)
    op.create_index('ux_scim_resources_user_name', 'scim_resources', ['org_id', 'user_name_ci'], unique=True, postgresql_where=sa.text("resource_type = 'User'"))
    op.create_table('scim_tokens',
    sa.Column('token_hash', sa.LargeBinary(), nullable=False),
    sa.Column('org_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash')
    )
    op.create_index('ix_scim_tokens_org', 'scim_tokens', ['org_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_scim_tokens_org', table_name='scim_tokens')
    op.drop_table('scim_tokens')
    op.drop_index('ux_scim_resources_user_name', table_name='scim_resources', postgresql_where=sa.text("resource_type = 'User'"))
    op.drop_index('ix_scim_resources_type_id', table_name='scim_resources')
    op.drop_index('ix_scim_resources_external_id', table_name='scim_resources')
    op.drop_index('ix_scim_resources_emails', table_name='scim_resources', postgresql_using='gin')
    op.drop_index('ix_scim_resources_display_name', table_name='scim_resources')
    op.drop_table('scim_resources')
    op.drop_index('ix_members_org_status', table_name='members')
    op.drop_index('ix_members_org_email', table_name='members')
    op.drop_table('members')
    op.drop_index('ix_scim_group_members_member', table_name='scim_group_members')
    op.drop_table('scim_group_members')
    op.drop_table('processed_events')
    op.drop_table('outbox')
    op.drop_table('orgs')
    op.drop_table('member_groups')
    op.drop_table('member_group_links')
    op.drop_table('dead_letters')
