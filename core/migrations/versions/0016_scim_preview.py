"""SCIM preview: an org's events held until it goes live

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 04:00:00

`preview_orgs`: the orgs in preview. `held_events`: the outbox rows of those orgs, kept back. A
trigger on `outbox` routes every row of an org in preview to `held_events` instead, whatever code
staged it (the SCIM storage, the lean create, sign-ins, admin actions), so no event of the org is
published until `domain/preview.py:go_live` moves its rows into the outbox, in their order.

The trigger costs one probe of `preview_orgs` (empty on most deployments: a `LIMIT 1` scan of an
empty table) per outbox row; with an org in preview, a shared advisory lock per row on that org's
key serialises the row against go-live (which takes it exclusively), so no row is held after its
org went live.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

HOLD = """
CREATE FUNCTION hold_preview_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  org uuid;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM preview_orgs LIMIT 1) THEN
    RETURN NEW;
  END IF;
  org := CAST(NEW.payload->>'orgid' AS uuid);
  PERFORM pg_advisory_xact_lock_shared(hashtextextended('provisioner-preview:' || org::text, 0));
  IF EXISTS (SELECT 1 FROM preview_orgs WHERE org_id = org) THEN
    INSERT INTO held_events (org_id, event_id, topic, key, payload)
    VALUES (org, NEW.event_id, NEW.topic, NEW.key, NEW.payload)
    ON CONFLICT (event_id) DO NOTHING;
    RETURN NULL;
  END IF;
  RETURN NEW;
END $$;
"""


def upgrade() -> None:
    op.create_table(
        "preview_orgs",
        sa.Column("org_id", UUID(as_uuid=False), sa.ForeignKey("orgs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("started_by", sa.Text, nullable=False),
    )
    op.create_table(
        "held_events",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("org_id", UUID(as_uuid=False), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("event_id", UUID(as_uuid=False), nullable=False, unique=True),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("clock_timestamp()")),
    )
    op.create_index("ix_held_events_org", "held_events", ["org_id", "id"])
    op.execute(HOLD)
    op.execute("CREATE TRIGGER outbox_hold_preview BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION hold_preview_events()")


def downgrade() -> None:
    op.execute("DROP TRIGGER outbox_hold_preview ON outbox")
    op.execute("DROP FUNCTION hold_preview_events()")
    op.drop_table("held_events")
    op.drop_table("preview_orgs")
