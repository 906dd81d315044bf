"""people, not emails: IdP bindings, the seat ledger per member, seat limits

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 10:30:00

Billing followed the email: `billing_accounts` had one row per (org, email), so a renamed person
lost their seat and whoever reused the address inherited it. The seat ledger `seats` has one row
per (org, member) with an explicit state, moved by conditional updates only. Existing rows move
over with their member: a held seat is version 1 (its first login), a released one version 2.
Members keep the IdP's externalId (a removed member created again with it is the same person),
and the IdP subjects they signed in as (`member_identities`). Orgs get an optional seat limit.
"""

from alembic import op
import sqlalchemy as sa

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_UUID = sa.UUID(as_uuid=False)
_NOW = sa.text("now()")


def upgrade() -> None:
    op.add_column("orgs", sa.Column("seat_limit", sa.Integer(), nullable=True))
    op.add_column("orgs", sa.Column("seat_policy", sa.Text(), server_default=sa.text("'refuse'"), nullable=False))
    op.create_check_constraint("ck_orgs_seat_limit", "orgs", "seat_limit IS NULL OR seat_limit >= 0")
    op.create_check_constraint("ck_orgs_seat_policy", "orgs", "seat_policy IN ('refuse', 'allow')")

    op.add_column("members", sa.Column("external_id", sa.Text(), nullable=True))
    op.create_index("ix_members_org_external_id", "members", ["org_id", "external_id"])
    op.execute(
        "UPDATE members m SET external_id = r.external_id FROM scim_resources r"
        " WHERE r.org_id = m.org_id AND r.id = m.scim_user_id AND r.resource_type = 'User'"
    )

    op.create_table(
        "member_identities",
        sa.Column("org_id", _UUID, nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("member_id", _UUID, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("org_id", "issuer", "subject"),
        sa.UniqueConstraint("member_id", "issuer", name="ux_member_identities_member_issuer"),
    )

    op.create_table(
        "seats",
        sa.Column("org_id", _UUID, nullable=False),
        sa.Column("member_id", _UUID, nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("first_login_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_login_event_id", _UUID, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.PrimaryKeyConstraint("org_id", "member_id"),
        sa.UniqueConstraint("first_login_event_id"),
        sa.CheckConstraint("state IN ('held', 'released')", name="ck_seats_state"),
    )
    op.create_index("ix_seats_org_state", "seats", ["org_id", "state"])
    op.execute(
        "INSERT INTO seats (org_id, member_id, state, version, first_login_at, first_login_event_id, updated_at)"
        " SELECT org_id, member_id, CASE WHEN seat_active THEN 'held' ELSE 'released' END,"
        " CASE WHEN seat_active THEN 1 ELSE 2 END, first_login_at, first_login_event_id, updated_at"
        " FROM billing_accounts ON CONFLICT DO NOTHING"
    )
    op.drop_table("billing_accounts")

    op.add_column("pending_logins", sa.Column("sign_in_id", _UUID, nullable=True))
    op.create_table(
        "seat_claims",
        sa.Column("org_id", _UUID, nullable=False),
        sa.Column("sign_in_id", _UUID, nullable=False),
        sa.Column("member_id", _UUID, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("org_id", "sign_in_id"),
    )
    op.create_index(
        "ux_seat_claims_member", "seat_claims", ["org_id", "member_id"], unique=True,
        postgresql_where=sa.text("member_id IS NOT NULL"),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("seat_claims")
    op.drop_column("pending_logins", "sign_in_id")
    op.create_table(
        "billing_accounts",
        sa.Column("org_id", _UUID, nullable=False),
        sa.Column("email_ci", sa.Text(), nullable=False),
        sa.Column("member_id", _UUID, nullable=False),
        sa.Column("first_login_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_login_event_id", _UUID, nullable=False),
        sa.Column("seat_active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.PrimaryKeyConstraint("org_id", "email_ci"),
        sa.UniqueConstraint("first_login_event_id"),
    )
    op.execute(
        "INSERT INTO billing_accounts SELECT s.org_id, lower(coalesce(m.email, m.id::text)), s.member_id, s.first_login_at,"
        " s.first_login_event_id, s.state = 'held', s.updated_at FROM seats s JOIN members m ON m.id = s.member_id"
        " ON CONFLICT DO NOTHING"
    )
    op.drop_table("seats")
    op.drop_table("member_identities")
    op.drop_index("ix_members_org_external_id", table_name="members")
    op.drop_column("members", "external_id")
    op.drop_constraint("ck_orgs_seat_policy", "orgs")
    op.drop_constraint("ck_orgs_seat_limit", "orgs")
    op.drop_column("orgs", "seat_policy")
    op.drop_column("orgs", "seat_limit")
