"""credential lifecycle: token ids, prefixes, last use, revocation; service token scopes; console sessions

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 11:15:00

Admin, service and SCIM tokens get an id and a non-secret prefix to be listed and revoked by, the time
they were last used (written at most once a minute) and `revoked_at`. Tokens issued before have no
prefix in clear: theirs is `legacy#` and the first hex digits of their hash. Service tokens may be
scoped to orgs (`org_ids`, NULL for all). Console sessions are rows, so sign-out can end them.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_UUID = sa.UUID(as_uuid=False)
_TABLES = ("scim_tokens", "admin_tokens", "service_tokens")


def upgrade() -> None:
    for table in _TABLES:
        op.add_column(table, sa.Column("id", _UUID, server_default=sa.text("gen_random_uuid()"), nullable=False))
        op.create_unique_constraint(f"{table}_id_key", table, ["id"])
        op.add_column(table, sa.Column("prefix", sa.Text(), server_default=sa.text("''"), nullable=False))
        op.execute(f"UPDATE {table} SET prefix = 'legacy#' || left(encode(token_hash, 'hex'), 8)")
        op.add_column(table, sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
        op.add_column(table, sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("service_tokens", sa.Column("org_ids", sa.ARRAY(_UUID), nullable=True))
    op.create_table(
        "console_sessions",
        sa.Column("id_hash", sa.LargeBinary(), primary_key=True),
        sa.Column("org_id", _UUID, sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("admin_token_id", _UUID, sa.ForeignKey("admin_tokens.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_console_sessions_token", "console_sessions", ["admin_token_id"])


def downgrade() -> None:
    op.drop_table("console_sessions")
    op.drop_column("service_tokens", "org_ids")
    for table in _TABLES:
        for column in ("revoked_at", "last_used_at", "prefix"):
            op.drop_column(table, column)
        op.drop_constraint(f"{table}_id_key", table)
        op.drop_column(table, "id")
