"""The seat ledger, seat claims and early sign-ins on PostgreSQL (domain.uow's Seats, SeatClaims,
PendingLogins): what first logins read and write. The set-wise methods are one statement each, so a
batch of sign-ins costs the workers a few round trips, not a few per sign-in."""

from collections.abc import Iterable

from sqlalchemy import Connection, bindparam, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert

from core.db import any_text, any_uuid, recordset_insert
from core.tables import pending_logins, seat_claims, seats
from domain.model import PendingLogin, Seat, SeatState
from domain.uow import Person

_PENDING = (
    select(*(pending_logins.c[name] for name in PendingLogin.__dataclass_fields__))
    .where(pending_logins.c.org_id == any_uuid("org_ids"), pending_logins.c.email_ci == any_text("emails"))
    .with_for_update()
)
# sign-ins of one person may arrive out of order: keep the earliest (rows are one per person here)
_ADD_PENDING = recordset_insert(
    pending_logins, tuple(PendingLogin.__dataclass_fields__),
    on_conflict="ON CONFLICT (org_id, email_ci) DO UPDATE SET event_id = excluded.event_id, "
    "logged_in_at = excluded.logged_in_at, method = excluded.method, sign_in_id = excluded.sign_in_id "
    "WHERE pending_logins.logged_in_at > excluded.logged_in_at",
)  # fmt: skip
_DELETE_PENDING = text(
    "DELETE FROM pending_logins WHERE (org_id, email_ci) IN (SELECT * FROM unnest(CAST(:orgs AS uuid[]), CAST(:keys AS text[])))"
)

_ADD_SEATS = recordset_insert(
    seats, tuple(Seat.__dataclass_fields__), on_conflict="ON CONFLICT DO NOTHING", returning="org_id, member_id"
)
_GET_SEAT = select(seats).where(seats.c.org_id == bindparam("org_id"), seats.c.member_id == bindparam("member_id"))
_MOVE_SEAT = (
    update(seats)
    .where(seats.c.org_id == bindparam("o"), seats.c.member_id == bindparam("m"), seats.c.state == bindparam("source"))
    .values(state=bindparam("target"), version=seats.c.version + 1, updated_at=func.now())
    .returning(seats.c.version)
)
_COUNT_HELD = select(func.count()).where(seats.c.org_id == bindparam("org_id"), seats.c.state == SeatState.HELD)

_ADD_CLAIM = insert(seat_claims).on_conflict_do_nothing()
_COUNT_CLAIMS = select(func.count()).where(
    seat_claims.c.org_id == bindparam("o"),
    seat_claims.c.created_at > func.clock_timestamp() - func.make_interval(0, 0, 0, 0, 0, 0, bindparam("age")),
)
_REMOVE_CLAIM = delete(seat_claims).where(seat_claims.c.org_id == bindparam("o"), seat_claims.c.sign_in_id == bindparam("s"))
_REMOVE_CLAIMS = text(
    "DELETE FROM seat_claims WHERE (org_id, sign_in_id) IN (SELECT * FROM unnest(CAST(:orgs AS uuid[]), CAST(:keys AS uuid[])))"
)


def _pairs(keys: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    wanted = sorted(set(keys))
    return {"orgs": [o for o, _ in wanted], "keys": [k for _, k in wanted]}


class PgSeats:
    def __init__(self, conn: Connection):
        self.conn = conn

    def add_if_absent(self, seat: Seat) -> bool:
        return bool(self.add_absent([seat]))

    def add_absent(self, seats: list[Seat]) -> set[tuple[str, str]]:
        first: dict[tuple[str, str], Seat] = {}
        for seat in seats:
            first.setdefault((seat.org_id, seat.member_id), seat)
        rows = _ADD_SEATS(self.conn, [vars(s) for s in first.values()])
        return {(str(r.org_id), str(r.member_id)) for r in rows}

    def get(self, org_id: str, member_id: str) -> Seat | None:
        row = self.conn.execute(_GET_SEAT, {"org_id": org_id, "member_id": member_id}).first()
        if row is None:
            return None
        return Seat(row.org_id, row.member_id, SeatState(row.state), row.version, row.first_login_at, row.first_login_event_id)

    def move(self, org_id: str, member_id: str, *, source: SeatState, target: SeatState) -> int | None:
        return self.conn.execute(_MOVE_SEAT, {"o": org_id, "m": member_id, "source": source, "target": target}).scalar()

    def count_held(self, org_id: str) -> int:
        return int(self.conn.execute(_COUNT_HELD, {"org_id": org_id}).scalar_one())


class PgSeatClaims:
    def __init__(self, conn: Connection):
        self.conn = conn

    def add(self, org_id: str, sign_in_id: str, member_id: str | None) -> None:
        self.conn.execute(_ADD_CLAIM, {"org_id": org_id, "sign_in_id": sign_in_id, "member_id": member_id})

    def count(self, org_id: str, *, max_age_seconds: float) -> int:
        return int(self.conn.execute(_COUNT_CLAIMS, {"o": org_id, "age": max_age_seconds}).scalar_one())

    def remove(self, org_id: str, sign_in_id: str) -> bool:
        return bool(self.conn.execute(_REMOVE_CLAIM, {"o": org_id, "s": sign_in_id}).rowcount)

    def remove_all(self, claims: Iterable[tuple[str, str]]) -> None:
        params = _pairs(claims)
        if params["orgs"]:
            self.conn.execute(_REMOVE_CLAIMS, params)


class PgPendingLogins:
    def __init__(self, conn: Connection):
        self.conn = conn

    def find(self, people: Iterable[Person]) -> dict[Person, PendingLogin]:
        wanted = set(people)
        if not wanted:
            return {}
        params = {"org_ids": sorted({o for o, _ in wanted}), "emails": sorted({e for _, e in wanted})}
        rows = self.conn.execute(_PENDING, params)
        return {(r.org_id, r.email_ci): PendingLogin(**r._mapping) for r in rows if (r.org_id, r.email_ci) in wanted}

    def add(self, logins: Iterable[PendingLogin]) -> None:
        earliest: dict[Person, PendingLogin] = {}
        for login in logins:
            kept = earliest.get((login.org_id, login.email_ci))
            if kept is None or login.logged_in_at < kept.logged_in_at:
                earliest[(login.org_id, login.email_ci)] = login
        _ADD_PENDING(self.conn, [vars(login) for login in earliest.values()])

    def remove(self, people: Iterable[Person]) -> None:
        params = _pairs(people)
        if params["orgs"]:
            self.conn.execute(_DELETE_PENDING, params)
