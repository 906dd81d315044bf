"""An org's SSO connections: one configuration per protocol, as JSON the protocol module reads."""

from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql import insert

from core.tables import sso_configs

PROTOCOLS = ("oidc", "saml")


def get(conn: Connection, org_id: str, protocol: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(sso_configs.c.config).where(sso_configs.c.org_id == org_id, sso_configs.c.protocol == protocol)
    ).first()
    return dict(row.config) if row else None


def put(conn: Connection, org_id: str, protocol: str, config: dict[str, Any]) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}")
    conn.execute(
        insert(sso_configs)
        .values(org_id=org_id, protocol=protocol, config=config)
        .on_conflict_do_update(index_elements=["org_id", "protocol"], set_={"config": config, "updated_at": func.now()})
    )
