"""What an SRE does with the session-revoked SETs waiting or dead: look, and queue dead ones again."""

from typing import Any

from sqlalchemy import Engine, text


def waiting(engine: Engine, status: str, limit: int) -> list[dict[str, Any]]:
    """The oldest signals in `status` (pending, dead or delivered), with their last error."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT jti::text, org_id::text, member_id::text, reason, occurred_at, attempts, next_attempt_at, "
            "last_error, delivered_at FROM security_events WHERE status = :s ORDER BY occurred_at LIMIT :n"
        ), {"s": status, "n": limit}).mappings().all()  # fmt: skip
    return [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()} for row in rows]


def redrive(engine: Engine, jtis: list[str] | None = None) -> int:
    """Dead signals (all, or these) pending again with a fresh count of attempts; returns how many."""
    where = "status = 'dead'" + (" AND jti = ANY(CAST(:jtis AS uuid[]))" if jtis else "")
    with engine.begin() as conn:
        done = conn.execute(text(
            f"UPDATE security_events SET status = 'pending', attempts = 0, next_attempt_at = now() WHERE {where}"
        ), {"jtis": jtis or []})  # fmt: skip
    return int(done.rowcount)


def prune(engine: Engine, days: float) -> int:
    """Forget delivered signals older than `days`; returns how many."""
    with engine.begin() as conn:
        done = conn.execute(text(
            "DELETE FROM security_events WHERE status = 'delivered' AND delivered_at < now() - make_interval(secs => :s)"
        ), {"s": days * 86400})  # fmt: skip
    return int(done.rowcount)
