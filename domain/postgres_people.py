"""Sign-ins waiting for their member, the seat ledger, seat claims and IdP bindings on PostgreSQL
(domain.uow's PendingLogins, Seats, SeatClaims and Identities). The ledger moves only by
insert-if-absent and conditional updates, so its rules (one first login per member, no restore
without a release) hold whatever runs concurrently."""

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Text, bindparam, cast, delete, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert

from core.tables import member_identities, pending_logins, seat_claims, seats
from domain.model import PendingLogin, Seat, SeatState
from domain.uow import Person

_ORG_IDS = func.any(cast(bindparam("org_ids"), ARRAY(UUID(as_uuid=False))))


def _any_text(name: str) -> Any:
    return func.any(cast(bindparam(name), ARRAY(Text)))


_PENDING = (
    select(*(pending_logins.c[name] for name in PendingLogin.__dataclass_fields__))
    .where(pending_logins.c.org_id == _ORG_IDS, pending_logins.c.email_ci == _any_text("emails"))
    .with_for_update()
)
_add_pending = insert(pending_logins)
_ADD_PENDING = _add_pending.on_conflict_do_update(  # sign-ins of one person may arrive out of order: keep the earliest
    index_elements=["org_id", "email_ci"],
    set_={name: _add_pending.excluded[name] for name in ("event_id", "logged_in_at", "method", "sign_in_id")},
    where=pending_logins.c.logged_in_at > _add_pending.excluded.logged_in_at,
)
_DELETE_PENDING = delete(pending_logins).where(
    pending_logins.c.org_id == bindparam("o"), pending_logins.c.email_ci == bindparam("e")
)

_ADD_SEAT = insert(seats).on_conflict_do_nothing().returning(seats.c.org_id)
_GET_SEAT = select(seats).where(seats.c.org_id == bindparam("org_id"), seats.c.member_id == bindparam("member_id"))
_MOVE_SEAT = (
    update(seats)
    .where(seats.c.org_id == bindparam("o"), seats.c.member_id == bindparam("m"), seats.c.state == bindparam("source"))
    .values(state=bindparam("target"), version=seats.c.version + 1, updated_at=func.now())
    .returning(seats.c.version)
)
_COUNT_HELD = select(func.count()).where(seats.c.org_id == bindparam("org_id"), seats.c.state == SeatState.HELD)

_MEMBER_OF = select(member_identities.c.member_id).where(
    member_identities.c.org_id == bindparam("o"),
    member_identities.c.issuer == bindparam("i"),
    member_identities.c.subject == bindparam("s"),
)
_SUBJECT_OF = select(member_identities.c.subject).where(
    member_identities.c.member_id == bindparam("m"), member_identities.c.issuer == bindparam("i")
)
_bind = insert(member_identities)
_BIND = _bind.on_conflict_do_update(
    index_elements=["org_id", "issuer", "subject"], set_={"member_id": _bind.excluded.member_id, "created_at": func.now()}
)
_UNBIND_OTHER = delete(member_identities).where(
    member_identities.c.member_id == bindparam("m"),
    member_identities.c.issuer == bindparam("i"),
    member_identities.c.subject != bindparam("s"),
)

_ADD_CLAIM = insert(seat_claims).on_conflict_do_nothing()
_COUNT_CLAIMS = select(func.count()).where(
    seat_claims.c.org_id == bindparam("o"),
    seat_claims.c.created_at > func.clock_timestamp() - func.make_interval(0, 0, 0, 0, 0, 0, bindparam("age")),
)
_REMOVE_CLAIM = delete(seat_claims).where(seat_claims.c.org_id == bindparam("o"), seat_claims.c.sign_in_id == bindparam("s"))


class PgSeats:
    def __init__(self, conn: Connection):
        self.conn = conn

    def add_if_absent(self, seat: Seat) -> bool:
        return self.conn.execute(_ADD_SEAT, vars(seat)).first() is not None

    def get(self, org_id: str, member_id: str) -> Seat | None:
        row = self.conn.execute(_GET_SEAT, {"org_id": org_id, "member_id": member_id}).first()
        if row is None:
            return None
        return Seat(row.org_id, row.member_id, SeatState(row.state), row.version, row.first_login_at, row.first_login_event_id)

    def move(self, org_id: str, member_id: str, *, source: SeatState, target: SeatState) -> int | None:
        return self.conn.execute(_MOVE_SEAT, {"o": org_id, "m": member_id, "source": source, "target": target}).scalar()

    def count_held(self, org_id: str) -> int:
        return int(self.conn.execute(_COUNT_HELD, {"org_id": org_id}).scalar_one())


class PgIdentities:
    def __init__(self, conn: Connection):
        self.conn = conn

    def member_of(self, org_id: str, issuer: str, subject: str) -> str | None:
        return self.conn.execute(_MEMBER_OF, {"o": org_id, "i": issuer, "s": subject}).scalar()

    def subject_of(self, member_id: str, issuer: str) -> str | None:
        return self.conn.execute(_SUBJECT_OF, {"m": member_id, "i": issuer}).scalar()

    def bind(self, org_id: str, issuer: str, subject: str, member_id: str) -> None:
        self.conn.execute(_UNBIND_OTHER, {"m": member_id, "i": issuer, "s": subject})
        self.conn.execute(_BIND, {"org_id": org_id, "issuer": issuer, "subject": subject, "member_id": member_id})


class PgSeatClaims:
    def __init__(self, conn: Connection):
        self.conn = conn

    def add(self, org_id: str, sign_in_id: str, member_id: str | None) -> None:
        self.conn.execute(_ADD_CLAIM, {"org_id": org_id, "sign_in_id": sign_in_id, "member_id": member_id})

    def count(self, org_id: str, *, max_age_seconds: float) -> int:
        return int(self.conn.execute(_COUNT_CLAIMS, {"o": org_id, "age": max_age_seconds}).scalar_one())

    def remove(self, org_id: str, sign_in_id: str) -> bool:
        return bool(self.conn.execute(_REMOVE_CLAIM, {"o": org_id, "s": sign_in_id}).rowcount)


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

    def add(self, login: PendingLogin) -> None:
        self.conn.execute(_ADD_PENDING, vars(login))

    def remove(self, people: Iterable[Person]) -> None:
        rows = [{"o": o, "e": e} for o, e in people]
        if rows:
            self.conn.execute(_DELETE_PENDING, rows)
