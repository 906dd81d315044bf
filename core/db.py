"""Engine construction: one per process, built by its entry point, never at import."""

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, Table, Text, bindparam, cast, create_engine, event, func, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.exc import DisconnectionError, ProgrammingError

from core.settings import Settings


def make_engine(settings: Settings, *, pool_size: int | None = None, bounded: bool = False) -> Engine:
    """Return an engine on psycopg2 with a bounded pool that survives a PostgreSQL restart.

    `bounded` (the ingest process's engine) gives every session PostgreSQL's `statement_timeout` and
    `idle_in_transaction_session_timeout` (`ingest_*` settings): a request's statement never runs on
    after its client has gone. Workers, the relay and migrations keep PostgreSQL's defaults (none).

    Workers, the relay and migrations ping each connection as they take it from the pool. Ingest
    pings only a connection idle for `db_ping_idle_seconds`: a ping per request was a round trip
    of its own (~7% of a SCIM create's time), and a connection in use is known to be alive or
    fails its next statement, which is a 503 the client retries (SQLAlchemy then replaces every
    connection of the pool opened before the failure).
    """
    url = settings.database_url
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    connect_args = {"options": session_timeouts(settings)} if bounded else {}
    engine = create_engine(
        url,
        pool_size=pool_size or settings.db_pool_size,
        max_overflow=0,  # no churn: an overflow connection is a PostgreSQL fork per request
        pool_pre_ping=not bounded,
        pool_recycle=1800,
        connect_args=connect_args,
    )
    if bounded:
        _ping_when_idle(engine, settings.db_ping_idle_seconds)
    return engine


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """A connection back from the pool after `idle_seconds` or more is pinged; a dead one is replaced."""

    @event.listens_for(engine, "checkin")
    def _returned(dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _taken(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        returned = record.info.get("returned_at")
        if returned is None or time.monotonic() - returned < idle_seconds:
            return  # new, or in use a moment ago
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            dbapi_connection.rollback()
        except Exception as exc:
            raise DisconnectionError("a pooled connection failed its ping") from exc  # the pool opens another


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


def recordset_insert(
    table: Table, columns: Sequence[str], *, on_conflict: str = "", returning: str = ""
) -> Callable[[Connection, list[dict[str, Any]]], list[Any]]:
    """An INSERT of many rows of `table` bound as one JSON array, kept in the list's order.

    SQLAlchemy's executemany binds every value of every row (a batch of 1,000 members is 18,000
    parameters, each adapted by psycopg2): most of the membership worker's interpreter time. One
    orjson-dumped array is one parameter, which PostgreSQL reads with `jsonb_to_recordset`. Values
    are what orjson writes (datetimes in ISO 8601, enums as their values); a column left out keeps its default.
    `on_conflict` is the statement's ON CONFLICT clause, if any; `returning` the columns of the
    rows written to return, if any.
    """
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    names = ", ".join(columns)
    types = ", ".join(f"{c} {table.c[c].type.compile(dialect=dialect)}" for c in columns)
    statement = text(
        f"INSERT INTO {table.name} ({names}) SELECT {names} FROM ROWS FROM "
        f"(jsonb_to_recordset(CAST(:rows AS jsonb)) AS ({types})) WITH ORDINALITY AS x({names}, n) ORDER BY n {on_conflict}"
        + (f" RETURNING {returning}" if returning else "")
    )

    def insert(conn: Connection, rows: list[dict[str, Any]]) -> list[Any]:
        if not rows:
            return []
        result = conn.execute(statement, {"rows": orjson.dumps(rows).decode()})
        return list(result) if returning else []

    return insert


def recordset_update(table: Table, key: str, columns: Sequence[str]) -> Callable[[Connection, list[dict[str, Any]]], None]:
    """An UPDATE of many rows of `table`, each found by its `key` column, bound as one JSON array as
    `recordset_insert` binds its rows: one statement, where an executemany is one round trip per
    row with psycopg2. A key given twice is updated with the last row given for it."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    types = ", ".join(f"{c} {table.c[c].type.compile(dialect=dialect)}" for c in (key, *columns))
    sets = ", ".join(f"{c} = x.{c}" for c in columns)
    statement = text(
        f"UPDATE {table.name} AS t SET {sets} "
        f"FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x({types}) WHERE t.{key} = x.{key}"
    )

    def update(conn: Connection, rows: list[dict[str, Any]]) -> None:
        last = {row[key]: row for row in rows}  # one row per key: PostgreSQL would pick one of two at random
        if last:
            conn.execute(statement, {"rows": orjson.dumps(list(last.values())).decode()})

    return update


ASYNC_COMMIT = text("SET LOCAL synchronous_commit = off")
"""For a transaction whose loss in a crash is acceptable (a sign-in state, the audit rows of reads
and refusals): its COMMIT does not wait for the WAL to reach the disk, so it does not queue behind,
or add to, the flushes that SCIM writes wait for. PostgreSQL still writes it within
`wal_writer_delay` (200 ms); a crash can lose only that, never corrupt anything."""


def drop_database(conn: Connection, name: str, *, attempts: int = 40) -> None:
    """DROP DATABASE ... WITH (FORCE), for test and benchmark databases. FORCE ends the sessions
    on it, but a role that is not a superuser may not end an autovacuum worker (PostgreSQL answers
    InsufficientPrivilege, "must be a member of the role whose process is being terminated"): the
    worker's pass over a small database ends within seconds, so that refusal is tried again."""
    for attempt in range(attempts):
        try:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except ProgrammingError as exc:
            if "must be a member of the role" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.25)

