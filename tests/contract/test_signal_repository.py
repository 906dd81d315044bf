"""The contract of the security-event repository (signals staged for push), on the in-memory
fake and on PostgreSQL, with tests/contract/test_repositories.py's backends."""

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from domain.model import SecurityEvent
from events.security_event_token import SESSION_REVOKED
from tests.contract import test_repositories

pytestmark = pytest.mark.contract

backend = test_repositories.backend
Backend = test_repositories.Backend
T0 = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


def _staged(backend: Backend) -> list[dict]:
    """The staged rows as a receiver-facing tuple of facts, whichever backend holds them."""
    uow = backend.uow
    if hasattr(uow, "conn"):
        rows = uow.conn.execute(text(
            "SELECT jti::text, org_id::text, member_id::text, event_type, reason, occurred_at, status, attempts "
            "FROM security_events ORDER BY occurred_at, jti"
        )).mappings().all()  # fmt: skip
        return [dict(r) for r in rows]
    rows = sorted(uow.tables.get("security_events", []), key=lambda r: (r["occurred_at"], r["jti"]))
    return [{k: r[k] for k in ("jti", "org_id", "member_id", "event_type", "reason", "occurred_at", "status", "attempts")}
            for r in rows]


def _signal(org: str, reason: str, at: datetime) -> SecurityEvent:
    return SecurityEvent(str(uuid.uuid4()), org, str(uuid.uuid4()), SESSION_REVOKED, reason, at)


def test_signals_are_staged_pending_once_per_jti(backend: Backend):
    org = backend.add_org()
    first, second = _signal(org, "deactivated", T0), _signal(org, "removed", T0.replace(minute=1))
    backend.uow.security_events.stage([first, second])
    backend.uow.security_events.stage([first])  # staged again (a redelivered member event): left as it is
    backend.uow.security_events.stage([])
    assert _staged(backend) == [
        {**vars(s), "status": "pending", "attempts": 0} for s in (first, second)
    ]
