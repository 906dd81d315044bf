"""Engine construction: one per process, built by its entry point, never at import."""

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Text, bindparam, cast, create_engine, func
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from core.settings import Settings


def make_engine(settings: Settings, *, pool_size: int | None = None) -> Engine:
    """Return an engine on psycopg2 with a bounded pool and pre-ping (survives a restart)."""
    url = settings.database_url
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return create_engine(
        url,
        pool_size=pool_size or settings.db_pool_size,
        max_overflow=0,  # no churn: an overflow connection is a PostgreSQL fork per request
        pool_pre_ping=True,
        pool_recycle=1800,
    )


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
