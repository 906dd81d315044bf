"""test sign-ins from the console: what the IdP sent and the verdict, kept for an hour

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 22:00:00

One row per test sign-in (`ingest/sso/trial.py`); read by the console's result page, purged
after an hour (and beyond the newest few per org) whenever another is saved.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sso_test_results",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("org_id", sa.UUID(as_uuid=False), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("report", JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
    )
    op.create_index("ix_sso_test_results_org_id", "sso_test_results", ["org_id"])


def downgrade() -> None:
    op.drop_table("sso_test_results")
