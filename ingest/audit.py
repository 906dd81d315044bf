"""The SCIM audit trail: one row per SCIM request made with an org's credential, served or refused.

`ScimAudit` (ASGI middleware on `/scim/...`) opens an entry per request. A SCIM write that
commits records its row inside its own transaction (`stage`, then `committed`), so a change is
never without its row and costs no extra commit. Every other request (reads, refusals, failed
writes) is queued and written in batches by `AuditWriter`'s thread, committed without waiting for
the disk: a crash loses at most the last `audit_flush_seconds` of those (plus PostgreSQL's
`wal_writer_delay`); a full queue drops rows, counted. The same thread prunes rows older than
`audit_retention_days` every `audit_prune_interval_seconds` (one ingest at a time).

What a row holds: the org, time, method, path, status, duration, user agent, request id, client
address, and the query with its values redacted (filter values never kept: they are emails and
names). Bodies and credentials are never stored. The org is the credential's: a token of the org
used on another org's path, a rotated-out token, or a token of an org whose SCIM is off still
names its org. A request whose token names none (missing, unknown) is not stored, only counted
(`provisioner_scim_audit_rows_total{outcome="unattributed"}`), since anyone can send those.
"""

import contextvars
import logging
import re
import threading
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import Connection, Engine, and_, select, text, tuple_

from core import credentials, cursors, metrics
from core.db import ASYNC_COMMIT
from core.settings import Settings
from core.tables import scim_audit, scim_tokens
from domain import idp_health, token_expiry

log = logging.getLogger("provisioner.audit")

_WRITES = {"POST", "PUT", "PATCH", "DELETE"}
_PRUNE_LOCK = 0x61756474  # "audt": one pruning ingest at a time
_PRUNE_BATCH = 10_000
_MAX_PATH, _MAX_QUERY, _MAX_AGENT = 256, 512, 256
# query parameters whose values are attribute names or numbers (RFC 7644 §3.4.2); others are redacted
_PLAIN_VALUES = {"attributes", "excludedAttributes", "sortBy", "sortOrder", "startIndex", "count"}
_PLAIN = re.compile(r"^[A-Za-z0-9:._,$ -]{0,200}$")
_QUOTED = re.compile(r'"(?:[^"\\]|\\[\s\S]?)*(?:"|$)')  # an unterminated string runs to the end
_NUMBER = re.compile(r"(?<![\w.$:])-?\d[\d.eE+-]*")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_INSERT = scim_audit.insert()  # built once, not per request
_Item = tuple[dict[str, Any], bytes | None, bool]  # a row, the token's hash when no org was named, stored already


@dataclass
class Entry:
    """One request on its way to becoming a row."""

    at: datetime
    started: float
    method: str
    path: str
    query: str | None
    user_agent: str | None
    client_address: str | None
    org_id: str | None = None
    stored: bool = False
    _staged: bool = False

    def row(self, status: int, request_id: str, duration: float) -> dict[str, Any]:
        return {
            "org_id": self.org_id, "at": self.at, "method": self.method, "path": self.path, "query": self.query,
            "status": status, "duration_ms": round(duration * 1000, 3), "user_agent": self.user_agent,
            "request_id": request_id, "client_address": self.client_address,
        }


_current: contextvars.ContextVar[Entry | None] = contextvars.ContextVar("scim_audit_entry", default=None)


def redact_filter(value: str) -> str:
    """The filter's attribute paths and operators, every compared value replaced by `?`."""
    return _NUMBER.sub("?", _QUOTED.sub('"?"', value))


def redact_query(raw: str) -> str | None:
    """`name=value&...` with values that may hold personal data replaced by `?` (filters redacted)."""
    if not raw:
        return None
    parts = []
    for name, value in parse_qsl(raw, keep_blank_values=True)[:20]:
        if name == "filter":
            value = redact_filter(value)
        elif name not in _PLAIN_VALUES or not _PLAIN.match(value):
            value = "?"
        parts.append(f"{name[:64]}={value}")
    return _clean("&".join(parts), _MAX_QUERY)


def _clean(value: str | None, size: int) -> str | None:
    """Text PostgreSQL can hold (no NUL), cut to `size`; None when empty."""
    return value.replace("\x00", "\ufffd")[:size] or None if value else None


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    headers: list[tuple[bytes, bytes]] = scope.get("headers") or []
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _token_hash(scope: dict[str, Any]) -> bytes | None:
    scheme, _, token = (_header(scope, b"authorization") or "").partition(" ")
    token = token.strip()
    return credentials.token_hash(token) if scheme.lower() == "bearer" and 0 < len(token) <= 512 else None


# -- the request path: called by the SCIM route glue ---------------------------------------------


def attribute(org_id: str) -> None:
    """The request's credential names this org."""
    entry = _current.get()
    if entry is not None:
        entry.org_id = org_id


def _write_entry() -> "Entry | None":  # a write of a known org: its row is stored inline
    entry = _current.get()
    return entry if entry is not None and entry.org_id is not None and entry.method in _WRITES else None


def stage(conn: Connection, status: int, request_id: str) -> None:
    """Inside a SCIM write's transaction: insert its row there (reads are left to the writer)."""
    entry = _write_entry()
    if entry is None:
        return
    conn.execute(_INSERT, entry.row(status, request_id, time.perf_counter() - entry.started))
    entry._staged = True


def staged_row(status: int, request_id: str) -> dict[str, Any] | None:
    """The row `stage` would insert, for a write inserting it itself (then `committed(inline=True)`)."""
    entry = _write_entry()
    return None if entry is None else entry.row(status, request_id, time.perf_counter() - entry.started)


def committed(*, inline: bool = False) -> None:
    """The transaction that staged the row (or inserted `staged_row`'s) committed: the row exists."""
    entry = _current.get()
    if entry is not None and (entry._staged or inline):
        entry.stored = True
        metrics.AUDIT_ROWS.labels("inline").inc()


class ScimAudit:
    """Opens an entry for each `/scim/...` request; hands unstored ones to the writer at the end."""

    def __init__(self, app: Any, writer: "AuditWriter"):
        self.app, self.writer = app, writer

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/scim/"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        entry = Entry(
            at=datetime.now(UTC), started=time.perf_counter(), method=scope["method"].upper(),
            path=_clean(scope["path"], _MAX_PATH) or "/", query=redact_query(scope.get("query_string", b"").decode("latin-1")),
            user_agent=_clean(_header(scope, b"user-agent"), _MAX_AGENT),
            client_address=client[0] if client else None,
        )
        status, sent_request_id = 500, None

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal status, sent_request_id
            if message["type"] == "http.response.start":
                status = int(message["status"])
                sent_request_id = next(
                    (v.decode("latin-1") for k, v in message.get("headers", []) if k.lower() == b"x-request-id"), None
                )
            await send(message)

        reset = _current.set(entry)
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            _current.reset(reset)
            if entry.stored:  # its row is in; the org's IdP health still hears of it
                self.writer.submit({"org_id": entry.org_id, "at": entry.at, "status": status, "method": entry.method},
                                   None, stored=True)  # fmt: skip
            else:
                offered = sent_request_id or _header(scope, b"x-request-id")
                request_id = offered if offered and _REQUEST_ID.match(offered) else uuid.uuid4().hex
                row = entry.row(status, request_id, time.perf_counter() - entry.started)
                self.writer.submit(row, None if entry.org_id else _token_hash(scope))


# -- the writer: batches, attribution by token, pruning ------------------------------------------


class AuditWriter:
    """A bounded queue of rows and the thread that writes them in batches and prunes old ones."""

    def __init__(self, settings: Settings, engine: Engine):
        self.engine = engine
        self.retention_days = settings.audit_retention_days
        self.flush_seconds = settings.audit_flush_seconds
        self.prune_every = settings.audit_prune_interval_seconds
        # a deque: atomic append and popleft, no lock or notify per request (the writer polls)
        self._queue: deque[_Item] = deque()
        self.queue_size = settings.audit_queue_size
        self.health_window = timedelta(seconds=settings.idp_health_window_seconds)
        self.health_usual = timedelta(seconds=settings.idp_health_usual_seconds)
        self.health_every = settings.idp_health_refresh_seconds
        self.topics, self.token_warning = settings.topics(), timedelta(days=settings.scim_token_warning_days)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, row: dict[str, Any], token_hash: bytes | None, *, stored: bool = False) -> None:
        """Queue a row; `token_hash` names the org later when the request did not get that far.
        A `stored` row is in already (a write's own transaction): only the org's IdP health hears of it."""
        if row["org_id"] is None and token_hash is None:
            metrics.AUDIT_ROWS.labels("unattributed").inc()
            return
        if len(self._queue) >= self.queue_size:
            metrics.AUDIT_ROWS.labels("dropped_full").inc()
            return
        self._queue.append((row, token_hash, stored))

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="scim-audit-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then stop (a graceful shutdown loses nothing)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        next_prune = next_health = time.monotonic()
        while True:
            stopping = self._stop.wait(self.flush_seconds)
            self.flush()
            if stopping:
                return
            if time.monotonic() >= next_health:
                next_health = time.monotonic() + self.health_every
                self.count_states()
                self.warn_expiring()
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + self.prune_every
                try:
                    prune(self.engine, self.retention_days)
                except Exception:
                    log.exception("pruning the SCIM audit trail failed; next try in %.0f s", self.prune_every)

    def flush(self) -> None:
        """Write every queued row now, in batches."""
        while True:
            batch: list[_Item] = []
            try:
                while len(batch) < 1000:
                    batch.append(self._queue.popleft())
            except IndexError:
                pass
            if not batch:
                return
            try:
                self._write(batch)
            except Exception:
                self._write_one_by_one(batch)

    def count_states(self) -> None:
        """Set `provisioner_scim_orgs` from every org's health row (each ingest exports the same counts)."""
        try:
            with self.engine.connect() as conn:
                counts = idp_health.states(conn, datetime.now(UTC), window=self.health_window, usual_default=self.health_usual)
        except Exception:
            log.exception("counting the orgs per IdP health state failed; next try in %.0f s", self.health_every)
            return
        for state, n in counts.items():
            metrics.SCIM_ORGS.labels(state).set(n)

    def warn_expiring(self) -> None:
        """One `credential.expiring` per SCIM token near its end (domain/token_expiry.py)."""
        try:
            token_expiry.warn_expiring(self.engine, self.topics, datetime.now(UTC), self.token_warning)
        except Exception:
            log.exception("warning about expiring SCIM tokens failed; next try in %.0f s", self.health_every)

    def _write_one_by_one(self, batch: list[_Item]) -> None:
        """After a failed batch: one row that the database refuses must not take the others with it."""
        for item in batch:
            try:
                self._write([item])
            except Exception:
                metrics.AUDIT_ROWS.labels("dropped_error").inc()
                log.exception("writing a SCIM audit row failed; it is lost")

    def _write(self, batch: list[_Item]) -> None:
        with self.engine.begin() as conn:
            conn.execute(ASYNC_COMMIT)  # these rows may already be lost in a crash (see the module's docstring)
            hashes = list({h for row, h, _ in batch if row["org_id"] is None and h is not None})
            owners: dict[bytes, str] = {}
            if hashes:
                query = select(scim_tokens.c.token_hash, scim_tokens.c.org_id).where(scim_tokens.c.token_hash.in_(hashes))
                owners = {row.token_hash: row.org_id for row in conn.execute(query)}
            rows, seen = [], defaultdict(list)
            for row, digest, stored in batch:
                org_id = row["org_id"] or (owners.get(digest) if digest is not None else None)
                if org_id is None:
                    metrics.AUDIT_ROWS.labels("unattributed").inc()
                    continue
                seen[org_id].append(idp_health.Seen(row["at"], row["status"], row["method"]))
                if not stored:
                    rows.append({**row, "org_id": org_id})
            if rows:
                conn.execute(_INSERT, rows)
            idp_health.record(conn, seen)
        metrics.AUDIT_ROWS.labels("batched").inc(len(rows))


def prune(engine: Engine, retention_days: int, *, wait: bool = False) -> int:
    """Delete rows older than the retention period, in batches; returns how many went.

    Any number of ingest processes may call it: one prunes, the others find the lock taken and
    leave (or, with `wait`, take their turn).
    """
    deleted = 0
    while True:
        with engine.begin() as conn:
            if wait:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PRUNE_LOCK})
            elif not conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _PRUNE_LOCK}).scalar():
                return deleted
            oldest_kept = select(scim_audit.c.id).where(
                scim_audit.c.at < text("now() - make_interval(days => :days)")
            ).limit(_PRUNE_BATCH)
            count = conn.execute(
                scim_audit.delete().where(scim_audit.c.id.in_(oldest_kept.scalar_subquery())), {"days": retention_days}
            ).rowcount
        deleted += count
        metrics.AUDIT_PRUNED.inc(count)
        if count < _PRUNE_BATCH:
            return deleted


# -- reading: the admin API's pages -------------------------------------------------------------


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The (time, id) a cursor points after; ValueError when it is not one this API issued."""
    at, row_id = cursors.decode(cursor)
    if not row_id.isdigit():
        raise ValueError("not a cursor this API issued")
    return at, int(row_id)


def list_entries(
    conn: Connection,
    org_id: str,
    *,
    limit: int,
    after: tuple[datetime, int] | None = None,
    status: str | None = None,
    method: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """The org's rows, newest first (after the (time, id) of `after`), and the cursor of the next
    page (None on the last one).

    `status` is a code (`409`) or a class (`4xx`); `since` is inclusive, `until` exclusive.
    """
    c = scim_audit.c
    query = select(scim_audit).where(c.org_id == org_id)
    if after is not None:
        query = query.where(tuple_(c.at, c.id) < tuple_(*after))
    if status is not None:
        if status.endswith("xx"):
            low = int(status[0]) * 100
            query = query.where(and_(c.status >= low, c.status < low + 100))
        else:
            query = query.where(c.status == int(status))
    if method is not None:
        query = query.where(c.method == method)
    if since is not None:
        query = query.where(c.at >= since)
    if until is not None:
        query = query.where(c.at < until)
    rows = conn.execute(query.order_by(c.at.desc(), c.id.desc()).limit(limit + 1)).mappings().all()
    page = [dict(r) for r in rows[:limit]]
    for r in page:
        del r["org_id"]
    more = len(rows) > limit
    return page, cursors.encode(page[-1]["at"], page[-1]["id"]) if more else None
