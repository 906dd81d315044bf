"""In-memory seat ledger, seat claims and IdP bindings (domain.uow's Seats, SeatClaims, Identities)."""

from collections.abc import Iterable
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from domain.model import Seat, SeatState

Tables = dict[str, list[dict[str, Any]]]


class FakeSeats:
    def __init__(self, tables: Tables):
        self.rows = tables.setdefault("seats", [])

    def _row(self, org_id: str, member_id: str) -> dict[str, Any] | None:
        return next((r for r in self.rows if (r["org_id"], r["member_id"]) == (org_id, member_id)), None)

    def add_if_absent(self, seat: Seat) -> bool:
        clash = self._row(seat.org_id, seat.member_id) or next(
            (r for r in self.rows if r["first_login_event_id"] == seat.first_login_event_id), None
        )
        if clash is not None:
            return False
        self.rows.append(asdict(seat))
        return True

    def add_absent(self, seats: list[Seat]) -> set[tuple[str, str]]:
        return {(s.org_id, s.member_id) for s in seats if self.add_if_absent(s)}

    def get(self, org_id: str, member_id: str) -> Seat | None:
        row = self._row(org_id, member_id)
        return replace(Seat(**{k: row[k] for k in Seat.__dataclass_fields__}), state=SeatState(row["state"])) if row else None

    def move(self, org_id: str, member_id: str, *, source: SeatState, target: SeatState) -> int | None:
        row = self._row(org_id, member_id)
        if row is None or row["state"] != source:
            return None
        row.update(state=target, version=row["version"] + 1)
        return int(row["version"])

    def count_held(self, org_id: str) -> int:
        return sum(1 for r in self.rows if r["org_id"] == org_id and r["state"] == SeatState.HELD)


class FakeSeatClaims:
    def __init__(self, tables: Tables):
        self.rows = tables.setdefault("seat_claims", [])

    def add(self, org_id: str, sign_in_id: str, member_id: str | None) -> None:
        if any(
            r["org_id"] == org_id and (r["sign_in_id"] == sign_in_id or (member_id and r["member_id"] == member_id))
            for r in self.rows
        ):
            return
        self.rows.append({"org_id": org_id, "sign_in_id": sign_in_id, "member_id": member_id, "created_at": datetime.now(UTC)})

    def count(self, org_id: str, *, max_age_seconds: float) -> int:
        since = datetime.now(UTC) - timedelta(seconds=max_age_seconds)
        return sum(1 for r in self.rows if r["org_id"] == org_id and r["created_at"] > since)

    def remove(self, org_id: str, sign_in_id: str) -> bool:
        before = len(self.rows)
        self.rows[:] = [r for r in self.rows if (r["org_id"], r["sign_in_id"]) != (org_id, sign_in_id)]
        return len(self.rows) < before

    def remove_all(self, claims: Iterable[tuple[str, str]]) -> None:
        gone = set(claims)
        self.rows[:] = [r for r in self.rows if (r["org_id"], r["sign_in_id"]) not in gone]


class FakeIdentities:
    def __init__(self, tables: Tables):
        self.rows = tables.setdefault("member_identities", [])

    def member_of(self, org_id: str, issuer: str, subject: str) -> str | None:
        return next(
            (r["member_id"] for r in self.rows if (r["org_id"], r["issuer"], r["subject"]) == (org_id, issuer, subject)), None
        )

    def subject_of(self, member_id: str, issuer: str) -> str | None:
        return next((r["subject"] for r in self.rows if (r["member_id"], r["issuer"]) == (member_id, issuer)), None)

    def bind(self, org_id: str, issuer: str, subject: str, member_id: str) -> None:
        self.rows[:] = [
            r
            for r in self.rows
            if (r["org_id"], r["issuer"], r["subject"]) != (org_id, issuer, subject)
            and not (r["member_id"] == member_id and r["issuer"] == issuer)
        ]
        self.rows.append({"org_id": org_id, "issuer": issuer, "subject": subject, "member_id": member_id})
