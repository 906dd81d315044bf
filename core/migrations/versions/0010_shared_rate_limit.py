"""one SCIM rate limit per org across ingest processes: a token bucket per org

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 11:30:00

With N ingest processes each kept its own bucket, so an org got N times its rate. The bucket now
lives in PostgreSQL, one row per org, spent by one upsert per SCIM request. The table is UNLOGGED:
after a crash it is empty, and an empty bucket is a full one.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scim_rate_buckets",
        sa.Column("org_id", sa.UUID(as_uuid=False), sa.ForeignKey("orgs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("refilled_at", sa.DateTime(timezone=True), nullable=False),
        prefixes=["UNLOGGED"],
    )


def downgrade() -> None:
    op.drop_table("scim_rate_buckets")
