"""The tables of what the provisioner holds back or pushes outside Kafka: Security Event Tokens
waiting for, or done with, their push to the operator's receiver (workers/signals), and the
events of orgs in SCIM preview (domain/preview.py). Part of the one schema (core.tables, whose
metadata it shares)."""

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, ForeignKey, Index, Integer, Table, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID

from core.metadata import NOW as _now
from core.metadata import metadata

security_events = Table(
    "security_events",
    metadata,
    Column("jti", UUID(as_uuid=False), primary_key=True),  # derived from the member event that caused it
    Column("org_id", UUID(as_uuid=False), nullable=False),  # no foreign key: a signal outlives an erased org's rows
    Column("member_id", UUID(as_uuid=False), nullable=False),
    Column("event_type", Text, nullable=False),  # the CAEP event type URI
    Column("reason", Text, nullable=False),  # deactivated | removed
    Column("occurred_at", DateTime(timezone=True), nullable=False),  # the SCIM (or admin) change's commit
    Column("staged_at", DateTime(timezone=True), **_now),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), **_now),
    Column("last_error", Text),
    Column("delivered_at", DateTime(timezone=True)),
    CheckConstraint("status IN ('pending', 'delivered', 'dead')", name="security_events_status"),
    Index("security_events_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
    Index("security_events_dead", "org_id", postgresql_where=text("status = 'dead'")),
)

# SCIM preview (domain/preview.py): the orgs whose events are held, and their held outbox rows. A
# trigger on `outbox` (migration 0016) routes an org-in-preview's rows here.
preview_orgs = Table(
    "preview_orgs",
    metadata,
    Column("org_id", UUID(as_uuid=False), ForeignKey("orgs.id", ondelete="CASCADE"), primary_key=True),
    Column("started_at", DateTime(timezone=True), **_now),
    Column("started_by", Text, nullable=False),
)
held_events = Table(
    "held_events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("org_id", UUID(as_uuid=False), ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", UUID(as_uuid=False), nullable=False, unique=True),
    Column("topic", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), server_default=func.clock_timestamp(), nullable=False),
    Index("ix_held_events_org", "org_id", "id"),
)
