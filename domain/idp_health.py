"""Is an org's IdP still syncing? One row per org (`scim_health`), moved forward by the SCIM audit
writer from every SCIM request it records, and the rule that names the org's state from it.

A request is an *auth failure* (401, 403: a revoked, expired or wrong-org token), a *failure*
(5xx, or 429: the IdP is being throttled), or a *success* (anything else: the IdP reached us with
a working credential; a 404 or 409 is a normal SCIM answer). States, in the order they win:

- `disabled`: the org's SCIM is switched off;
- `failing_auth`: an auth failure within the window, and no success since it;
- `failing_requests`: a failure within the window, and no success since it;
- `not_connected`: no success ever (and nothing failing now);
- `quiet`: no success for longer than twice the org's usual interval between sync cycles (an
  EWMA of the gaps of over a minute between successes; `idp_health_usual_seconds` until one was seen);
- `healthy`: otherwise.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, case, func, select
from sqlalchemy.dialects.postgresql import insert

from core.tables import orgs, scim_audit, scim_health
from domain import token_expiry, tokens

STATES = ("healthy", "quiet", "failing_auth", "failing_requests", "not_connected", "disabled")
FAILING = ("failing_auth", "failing_requests")
_WRITES = {"POST", "PUT", "PATCH", "DELETE"}
CYCLE_GAP = timedelta(seconds=60)  # successes further apart than this are separate sync cycles
_EWMA = 0.3  # weight of the newest cycle gap in the usual interval


@dataclass(frozen=True)
class Health:
    last_request_at: datetime | None = None
    last_success_at: datetime | None = None
    last_write_at: datetime | None = None
    last_auth_failure_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_failure_status: int | None = None
    usual_interval_seconds: float | None = None


@dataclass(frozen=True)
class Seen:
    """One SCIM request of an org, as the audit trail recorded it."""

    at: datetime
    status: int
    method: str


def kind_of(status: int) -> str:
    if status in (401, 403):
        return "auth_failure"
    if status >= 500 or status == 429:
        return "failure"
    return "success"


def observe(health: Health, seen: Iterable[Seen]) -> Health:
    """The row after these requests (any order): times only move forward; each success more than
    `CYCLE_GAP` after the one before it updates the usual interval. (Folded in locals: the audit
    writer runs this for every request ingest serves.)"""
    h = health
    request, success, write = h.last_request_at, h.last_success_at, h.last_write_at
    auth_failure, failure, failure_status, usual = (
        h.last_auth_failure_at, h.last_failure_at, h.last_failure_status, h.usual_interval_seconds
    )
    for s in sorted(seen, key=lambda s: s.at):
        request = _later(request, s.at)
        kind = kind_of(s.status)
        if kind == "auth_failure":
            auth_failure = _later(auth_failure, s.at)
        elif kind == "failure":
            if failure is None or s.at >= failure:
                failure, failure_status = s.at, s.status
        else:
            if success is not None and s.at - success > CYCLE_GAP:
                gap = (s.at - success).total_seconds()
                usual = gap if usual is None else (1 - _EWMA) * usual + _EWMA * gap
            success = _later(success, s.at)
            if s.method in _WRITES and s.status < 300:
                write = _later(write, s.at)
    return Health(last_request_at=request, last_success_at=success, last_write_at=write, last_auth_failure_at=auth_failure,
                  last_failure_at=failure, last_failure_status=failure_status, usual_interval_seconds=usual)


def state_of(h: Health | None, now: datetime, *, scim_enabled: bool, window: timedelta, usual_default: timedelta) -> str:
    if not scim_enabled:
        return "disabled"
    h = h or Health()
    success = h.last_success_at
    for state, last in (("failing_auth", h.last_auth_failure_at), ("failing_requests", h.last_failure_at)):
        if last is not None and last >= now - window and (success is None or last > success):
            return state
    if success is None:
        return "not_connected"
    usual = timedelta(seconds=h.usual_interval_seconds) if h.usual_interval_seconds else usual_default
    return "quiet" if now - success > 2 * max(usual, CYCLE_GAP) else "healthy"


def _later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


# -- PostgreSQL ----------------------------------------------------------------------------------

_FIELDS = tuple(Health.__dataclass_fields__)
_h = scim_health.c


def _upsert() -> Any:
    """Insert, or move the row forward: two writers that both found no row keep the later times."""
    new = insert(scim_health)
    later = {f: func.greatest(_h[f], new.excluded[f]) for f in _FIELDS if f.endswith("_at")}
    status = case((new.excluded.last_failure_at >= func.coalesce(_h.last_failure_at, new.excluded.last_failure_at),
                   new.excluded.last_failure_status), else_=_h.last_failure_status)  # fmt: skip
    changes = {**later, "last_failure_status": status, "usual_interval_seconds": new.excluded.usual_interval_seconds}
    return new.on_conflict_do_update(index_elements=[_h.org_id], set_=changes)


_UPSERT = _upsert()


def record(conn: Connection, seen: dict[str, list[Seen]]) -> None:
    """Move the orgs' rows forward (the caller commits): read them locked, fold the requests in,
    write them back in one statement. Several ingest processes may write the same org: each waits
    for the other's row."""
    if not seen:
        return
    query = select(scim_health).where(_h.org_id.in_(sorted(seen))).order_by(_h.org_id).with_for_update()
    found = {row.org_id: Health(**{f: getattr(row, f) for f in _FIELDS}) for row in conn.execute(query)}
    rows = [{"org_id": org_id, **vars(observe(found.get(org_id, Health()), seen[org_id]))} for org_id in sorted(seen)]
    conn.execute(_UPSERT, rows)


def health_of(conn: Connection, org_id: str) -> Health | None:
    row = conn.execute(select(scim_health).where(_h.org_id == org_id)).first()
    return Health(**{f: getattr(row, f) for f in _FIELDS}) if row else None


def recent_statuses(conn: Connection, org_id: str, since: datetime) -> dict[str, int]:
    """The org's SCIM requests since then, by outcome: `2xx`, `401` (and 403), other `4xx`, `429`, `5xx`."""
    c = scim_audit.c
    rows = conn.execute(
        select(c.status, func.count()).where(c.org_id == org_id, c.at >= since).group_by(c.status)
    ).all()
    counts = {"2xx": 0, "401": 0, "4xx": 0, "429": 0, "5xx": 0}
    for status, n in rows:
        key = "401" if status in (401, 403) else "429" if status == 429 else f"{str(status)[0]}xx"
        counts[key if key in counts else "4xx"] += int(n)
    return counts


def org_states(
    conn: Connection, now: datetime, *, window: timedelta, usual_default: timedelta
) -> list[tuple[str, str, Health | None]]:
    """(slug, state, health row) of every org, by slug (a small table: one row per org)."""
    query = (
        select(orgs.c.slug, orgs.c.scim_enabled, *(_h[f] for f in _FIELDS))
        .outerjoin(scim_health, _h.org_id == orgs.c.id)
        .order_by(orgs.c.slug)
    )
    found = []
    for row in conn.execute(query):
        h = Health(**{f: getattr(row, f) for f in _FIELDS}) if row.last_request_at is not None else None
        found.append((row.slug, state_of(h, now, scim_enabled=row.scim_enabled, window=window, usual_default=usual_default), h))
    return found


def states(conn: Connection, now: datetime, *, window: timedelta, usual_default: timedelta) -> dict[str, int]:
    """How many orgs are in each state."""
    counts = dict.fromkeys(STATES, 0)
    for _, state, _ in org_states(conn, now, window=window, usual_default=usual_default):
        counts[state] += 1
    return counts


def view(h: Health | None, state: str) -> dict[str, Any]:
    """The org's health as the admin API and the console show it (times in ISO 8601)."""
    h = h or Health()
    shown: dict[str, Any] = {"state": state}
    for f in _FIELDS:
        value = getattr(h, f)
        shown[f] = value.isoformat() if isinstance(value, datetime) else value
    return shown


def report(
    conn: Connection, org_id: str, scim_enabled: bool, now: datetime, *, window: timedelta, usual_default: timedelta,
    token_warning: timedelta = timedelta(days=14),
) -> dict[str, Any]:
    """The org's IdP health as an admin sees it: the state and its times, the last hour's requests
    by outcome, and each SCIM token's last use and end (`expires_soon` within `token_warning`)."""
    h = health_of(conn, org_id)
    shown = view(h, state_of(h, now, scim_enabled=scim_enabled, window=window, usual_default=usual_default))
    shown["last_hour"] = recent_statuses(conn, org_id, now - timedelta(hours=1))
    listed = tokens.listing(conn, "scim", org_id)
    newest = max((t["created_at"] for t in listed), default=None)  # an older one was replaced: its end is no news
    shown["scim_tokens"] = [
        {k: t[k] for k in ("id", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at", "live")}
        | {"expires_soon": bool(t["live"] and t["created_at"] == newest and token_expiry.soon(
            datetime.fromisoformat(t["expires_at"]) if t["expires_at"] else None, now, token_warning))}
        for t in listed
    ]  # fmt: skip
    return shown
