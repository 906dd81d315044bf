"""Organisations and their SCIM credentials. The org of a SCIM request comes from its token alone."""

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from core import credentials
from core.tables import orgs, scim_tokens

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class OrgError(ValueError):
    """A request about orgs that cannot be honoured; the message says why."""


@dataclass(frozen=True)
class Org:
    id: str
    slug: str
    name: str
    scim_enabled: bool = True
    sso_provisioning: bool = False
    manual_provisioning: bool = True
    seat_limit: int | None = None  # billed seats the org's plan includes; None: no limit
    seat_policy: str = "refuse"  # past the limit: `refuse` the sign-in, or `allow` it with an overage

    @classmethod
    def of(cls, row: Any) -> "Org":
        return cls(
            id=row.id,
            slug=row.slug,
            name=row.name,
            scim_enabled=row.scim_enabled,
            sso_provisioning=row.sso_provisioning,
            manual_provisioning=row.manual_provisioning,
            seat_limit=row.seat_limit,
            seat_policy=row.seat_policy,
        )


def scim_base_url(public_url: str, slug: str) -> str:
    return f"{public_url.rstrip('/')}/scim/{slug}/v2"


def create(engine: Engine, slug: str, name: str | None = None) -> tuple[Org, str]:
    """Create an org and its first SCIM token; returns the token in clear, once."""
    if not SLUG.match(slug):
        raise OrgError("slug must be 1-63 lowercase letters, digits or hyphens")
    org = Org(id=str(uuid.uuid4()), slug=slug, name=name or slug)
    token = credentials.new_token()
    with engine.begin() as conn:
        if conn.execute(select(orgs.c.id).where(orgs.c.slug == slug)).first():
            raise OrgError(f"org {slug!r} already exists")
        conn.execute(orgs.insert().values(id=org.id, slug=slug, name=org.name))
        conn.execute(scim_tokens.insert().values(org_id=org.id, token_hash=credentials.token_hash(token)))
    return org, token


def get(conn: Connection, slug: str) -> Org:
    row = conn.execute(select(orgs).where(orgs.c.slug == slug)).first()
    if row is None:
        raise OrgError(f"no org {slug!r}")
    return Org.of(row)


def rotate_token(engine: Engine, slug: str, overlap_seconds: int) -> str:
    """Issue a new token; older tokens keep working for `overlap_seconds`, then stop."""
    token = credentials.new_token()
    now = datetime.now(UTC)
    with engine.begin() as conn:
        org = get(conn, slug)
        conn.execute(
            update(scim_tokens)
            .where(scim_tokens.c.org_id == org.id)
            .where((scim_tokens.c.expires_at.is_(None)) | (scim_tokens.c.expires_at > now + timedelta(seconds=overlap_seconds)))
            .values(expires_at=now + timedelta(seconds=overlap_seconds))
        )
        conn.execute(scim_tokens.insert().values(org_id=org.id, token_hash=credentials.token_hash(token)))
    return token


def authenticate(conn: Connection, token: str) -> Org | None:
    """Return the org a live token belongs to, or None."""
    digest = credentials.token_hash(token)
    row = conn.execute(
        select(orgs, scim_tokens.c.token_hash, scim_tokens.c.expires_at)
        .join(scim_tokens, scim_tokens.c.org_id == orgs.c.id)
        .where(scim_tokens.c.token_hash == digest)
    ).first()
    if row is None or not credentials.matches(token, row.token_hash):
        return None
    if row.expires_at is not None and row.expires_at <= datetime.now(UTC):
        return None
    return Org.of(row)


SETTINGS = ("manual_provisioning", "sso_provisioning", "scim_enabled")
SEAT_SETTINGS = ("seat_limit", "seat_policy")


def update_settings(engine: Engine, slug: str, **changes: bool | int | str | None) -> Org:
    """Change the provisioning toggles and seat settings given (None leaves one as it is), with no
    event: for operators and tests; admins change settings through domain.admin."""
    values = {k: v for k, v in changes.items() if v is not None}
    unknown = set(values) - set(SETTINGS) - set(SEAT_SETTINGS)
    if unknown:
        raise OrgError(f"unknown settings: {', '.join(sorted(unknown))}")
    with engine.begin() as conn:
        org = get(conn, slug)
        if values:
            conn.execute(update(orgs).where(orgs.c.id == org.id).values(**values))
        return get(conn, slug)
