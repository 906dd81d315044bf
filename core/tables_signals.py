"""Security Event Tokens waiting for, or done with, their push to the operator's receiver
(workers/signals): one row per signal, staged in the same transaction as its cause's tracking
row, then delivered with retries. Part of the one schema (core.tables, whose metadata it shares)."""

from sqlalchemy import CheckConstraint, Column, DateTime, Index, Integer, Table, Text, text
from sqlalchemy.dialects.postgresql import UUID

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
