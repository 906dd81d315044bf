"""is each org's IdP still syncing: one health row per org, kept by the SCIM audit writer

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 20:00:00

The last request, success, write, auth failure and failure of the org's SCIM client, and the usual
interval between its sync cycles; `domain/idp_health.py` names the state from them. Orgs with
SCIM traffic before this revision get their row at their next request.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    at = sa.DateTime(timezone=True)
    op.create_table(
        "scim_health",
        sa.Column("org_id", sa.UUID(as_uuid=False), sa.ForeignKey("orgs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("last_request_at", at),
        sa.Column("last_success_at", at),
        sa.Column("last_write_at", at),
        sa.Column("last_auth_failure_at", at),
        sa.Column("last_failure_at", at),
        sa.Column("last_failure_status", sa.Integer()),
        sa.Column("usual_interval_seconds", sa.Float()),
    )


def downgrade() -> None:
    op.drop_table("scim_health")
