"""Service tokens: how the SaaS app's backend calls the internal API (logins, accounts). A token may be
scoped to some orgs (unscoped: every org); it is listed and revoked like every token (`domain.tokens`)."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select

from core import credentials
from core.tables import orgs, service_tokens
from domain import tokens


class ServiceTokenError(ValueError):
    """A service-token request that cannot be honoured; the message says why."""


@dataclass(frozen=True)
class ServiceCaller:
    """The service a token belongs to, and the orgs it may act for (None: every org)."""

    name: str
    token_id: str
    org_ids: frozenset[str] | None = None

    def may_act_for(self, org_id: str) -> bool:
        """An unscoped token acts for every org; a scoped one only for the orgs it names."""
        return self.org_ids is None or org_id in self.org_ids


def create(engine: Engine, name: str, org_slugs: Sequence[str] | None = None) -> str:
    """Issue a service token (scoped to the orgs named, when given); returns it in clear, once."""
    token = credentials.new_token("svc")
    with engine.begin() as conn:
        org_ids = None
        if org_slugs:
            found = dict(conn.execute(select(orgs.c.slug, orgs.c.id).where(orgs.c.slug.in_(list(org_slugs)))).all())
            unknown = sorted(set(org_slugs) - set(found))
            if unknown:
                raise ServiceTokenError(f"no org {', '.join(repr(s) for s in unknown)}")
            org_ids = sorted(str(found[s]) for s in set(org_slugs))
        conn.execute(
            service_tokens.insert().values(
                id=str(uuid.uuid4()), token_hash=credentials.token_hash(token), prefix=credentials.prefix_of(token),
                name=name, org_ids=org_ids,
            )
        )  # fmt: skip
    return token


def authenticate(conn: Connection, token: str) -> ServiceCaller | None:
    """The service a live token belongs to, or None; records its use at most once a minute (the caller commits)."""
    digest = credentials.token_hash(token)
    row = conn.execute(select(service_tokens).where(service_tokens.c.token_hash == digest)).first()
    if row is None or not credentials.matches(token, row.token_hash) or not tokens.is_live(row):
        return None
    tokens.touch(conn, service_tokens, row)
    scope = frozenset(str(o) for o in row.org_ids) if row.org_ids is not None else None
    return ServiceCaller(name=str(row.name), token_id=str(row.id), org_ids=scope)
