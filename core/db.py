"""Engine construction: one per process, built by its entry point, never at import."""

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Text, bindparam, cast, create_engine, func, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from core.settings import Settings


def make_engine(settings: Settings, *, pool_size: int | None = None, bounded: bool = False) -> Engine:
    """Return an engine on psycopg2 with a bounded pool and pre-ping (survives a restart).

    `bounded` (the ingest process's engine) gives every session PostgreSQL's `statement_timeout` and
    `idle_in_transaction_session_timeout` (`ingest_*` settings): a request's statement never runs on
    after its client has gone. Workers, the relay and migrations keep PostgreSQL's defaults (none).
    """
    url = settings.database_url
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    connect_args = {"options": session_timeouts(settings)} if bounded else {}
    return create_engine(
        url,
        pool_size=pool_size or settings.db_pool_size,
        max_overflow=0,  # no churn: an overflow connection is a PostgreSQL fork per request
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args=connect_args,
    )


def session_timeouts(settings: Settings) -> str:
    """The libpq `options` that set the ingest session's timeouts, in milliseconds (0 is PostgreSQL's "none")."""
    statement = int(settings.ingest_statement_timeout_seconds * 1000)
    idle = int(settings.ingest_idle_in_transaction_seconds * 1000)
    return f"-c statement_timeout={statement} -c idle_in_transaction_session_timeout={idle}"


def json_row(row: Any, *names: str) -> dict[str, Any]:
    """These columns of a row as a JSON-ready dict: timestamps in ISO 8601, nulls as None."""
    values = {name: getattr(row, name) for name in names}
    return {name: v.isoformat() if isinstance(v, datetime) else v for name, v in values.items()}


def any_text(name: str) -> Any:
    """`= ANY(:name)` for a bound list of texts: one statement for a set of keys."""
    return func.any(cast(bindparam(name), ARRAY(Text)))


def any_uuid(name: str) -> Any:
    """`= ANY(:name)` for a bound list of UUIDs."""
    return func.any(cast(bindparam(name), ARRAY(UUID(as_uuid=False))))


ASYNC_COMMIT = text("SET LOCAL synchronous_commit = off")
"""For a transaction whose loss in a crash is acceptable (a sign-in state, the audit rows of reads
and refusals): its COMMIT does not wait for the WAL to reach the disk, so it does not queue behind,
or add to, the flushes that SCIM writes wait for. PostgreSQL still writes it within
`wal_writer_delay` (200 ms); a crash can lose only that, never corrupt anything."""
