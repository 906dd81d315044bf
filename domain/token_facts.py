"""The audit facts of tokens issued and revoked (no secret in them), and staging them on a bare connection."""

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from domain.uow import FactStaging
from events import catalogue as c
from events import outbox
from events.envelope import Event


def issued_fact(kind: str, token_id: str, prefix: str, name: str, reason: str, actor: str) -> c.Payload:
    """`credential.issued` for a new admin or SCIM token (`reason`: `created` or `rotated`); no secret in it."""
    return c.CredentialIssued(kind=kind, token_id=token_id, prefix=prefix, name=name, reason=reason, actor=actor)


def revoked_fact(kind: str, row: Any, actor: str) -> c.Payload:
    """`credential.revoked` for a token revoked now."""
    name = getattr(row, "name", None) or kind
    return c.CredentialRevoked(kind=kind, token_id=str(row.id), prefix=row.prefix, name=name, reason="revoked", actor=actor)


def expiring_fact(token_id: str, prefix: str, expires_at: datetime) -> c.Payload:
    """`credential.expiring` for a SCIM token issued with a lifetime, some days before it ends."""
    return c.CredentialExpiring(kind="scim", token_id=token_id, prefix=prefix, expires_at=expires_at.isoformat())


class ConnectionFacts(FactStaging):
    """`stage_fact` on a bare connection, for commands that write a token outside a unit of work."""

    def __init__(self, conn: Connection, topics: dict[str, str]):
        self.conn, self.topics = conn, topics

    def stage(self, events: Iterable[Event]) -> None:
        outbox.add(self.conn, events, self.topics)

    def transaction_id(self) -> int:
        return int(self.conn.execute(select(func.txid_current())).scalar_one())
