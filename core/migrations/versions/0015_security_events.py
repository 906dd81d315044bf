"""Security Event Tokens pushed to the operator's receiver (CAEP session-revoked)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 03:30:00

`security_events`: one row per signal the signals worker stages for a deactivated or removed
member (`workers/signals`), then delivers (RFC 8935) with retries; `dead` once it gave up.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "security_events",
        sa.Column("jti", UUID(as_uuid=False), primary_key=True),
        sa.Column("org_id", UUID(as_uuid=False), nullable=False),
        sa.Column("member_id", UUID(as_uuid=False), nullable=False),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("staged_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("last_error", sa.Text),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'dead')", name="security_events_status"),
    )
    op.create_index("security_events_due", "security_events", ["next_attempt_at"], postgresql_where=sa.text("status = 'pending'"))
    op.create_index("security_events_dead", "security_events", ["org_id"], postgresql_where=sa.text("status = 'dead'"))


def downgrade() -> None:
    op.drop_table("security_events")
