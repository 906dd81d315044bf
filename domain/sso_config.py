"""An org's SSO connections: one configuration per protocol, as JSON the protocol module reads. Every change
is an `org.sso.configured` fact (which settings changed, never their values) when the caller gives the topics."""

from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql import insert

from core.tables import orgs, sso_configs
from domain import token_facts
from events import catalogue as c

PROTOCOLS = ("oidc", "saml")


def get(conn: Connection, org_id: str, protocol: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(sso_configs.c.config).where(sso_configs.c.org_id == org_id, sso_configs.c.protocol == protocol)
    ).first()
    return dict(row.config) if row else None


def configured_fact(protocol: str, before: dict[str, Any] | None, after: dict[str, Any], actor: str) -> c.Payload | None:
    """`org.sso.configured` for a connection going from `before` (None: there was none) to `after`, or
    None when nothing changed."""
    old = before or {}
    changed = sorted(k for k in set(old) | set(after) if old.get(k) != after.get(k))
    if before is not None and not changed:
        return None
    return c.OrgSsoConfigured(protocol=protocol, created=before is None, changed=changed, actor=actor)


def put(
    conn: Connection,
    org_id: str,
    protocol: str,
    config: dict[str, Any],
    *,
    topics: dict[str, str] | None = None,
    actor: str = "admin",
) -> None:
    """Store the org's connection for `protocol`; with `topics`, a change stages `org.sso.configured` with it."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}")
    before = get(conn, org_id, protocol)
    conn.execute(
        insert(sso_configs)
        .values(org_id=org_id, protocol=protocol, config=config)
        .on_conflict_do_update(index_elements=["org_id", "protocol"], set_={"config": config, "updated_at": func.now()})
    )
    fact = configured_fact(protocol, before, config, actor)
    if topics is not None and fact is not None:
        slug = conn.execute(select(orgs.c.slug).where(orgs.c.id == org_id)).scalar_one()
        token_facts.ConnectionFacts(conn, topics).stage_fact(fact, org_id=org_id, org_slug=slug)
