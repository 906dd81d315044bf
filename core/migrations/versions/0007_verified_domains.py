"""verified email domains and invitations

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 10:00:00

An org may acquire an account only on an email domain it has verified (a DNS TXT challenge, or
support's override); a domain is verified by at most one org, which the partial unique index
enforces. Otherwise the org invites the person, and their consent through the app makes the
account the member.
"""

from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "org_domains",
        sa.Column("org_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("domain", sa.Text(), nullable=False),
        sa.Column("challenge", sa.Text(), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("method", sa.Text(), nullable=True),
        sa.Column("verified_by", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("method IS NULL OR method IN ('dns', 'support')", name="ck_org_domains_method"),
        sa.CheckConstraint("(verified_at IS NULL) = (method IS NULL)", name="ck_org_domains_verified_method"),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("org_id", "domain"),
    )
    op.create_index(
        "ux_org_domains_verified", "org_domains", ["domain"], unique=True, postgresql_where=sa.text("verified_at IS NOT NULL")
    )
    op.create_table(
        "invitations",
        sa.Column("id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("org_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("conflict_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("member_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("account_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.CheckConstraint("status IN ('pending', 'accepted')", name="ck_invitations_status"),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["conflict_id"], ["conflicts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("conflict_id", name="ux_invitations_conflict"),
    )
    op.create_index("ix_invitations_account_status", "invitations", ["account_id", "status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_invitations_account_status", table_name="invitations")
    op.drop_table("invitations")
    op.drop_index("ux_org_domains_verified", table_name="org_domains", postgresql_where=sa.text("verified_at IS NOT NULL"))
    op.drop_table("org_domains")
