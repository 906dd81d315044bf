"""Organisations and their SCIM credentials. The org of a SCIM request comes from its token alone."""

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from core import credentials
from core.tables import orgs, scim_tokens
from domain import tokens

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


def create(
    engine: Engine, slug: str, name: str | None = None, *, topics: dict[str, str] | None = None, actor: str = "cli"
) -> tuple[Org, str]:
    """Create an org and its first SCIM token; returns the token in clear, once. With `topics`, the token's
    `credential.issued` is staged with it."""
    if not SLUG.match(slug):
        raise OrgError("slug must be 1-63 lowercase letters, digits or hyphens")
    org = Org(id=str(uuid.uuid4()), slug=slug, name=name or slug)
    token = credentials.new_token()
    with engine.begin() as conn:
        if conn.execute(select(orgs.c.id).where(orgs.c.slug == slug)).first():
            raise OrgError(f"org {slug!r} already exists")
        conn.execute(orgs.insert().values(id=org.id, slug=slug, name=org.name))
        _insert_token(conn, org, token, "created", topics, actor)
    return org, token


def _insert_token(
    conn: Connection, org: Org, token: str, reason: str, topics: dict[str, str] | None, actor: str,
    expires_at: datetime | None = None,
) -> None:
    token_id, prefix = str(uuid.uuid4()), credentials.prefix_of(token)
    conn.execute(
        scim_tokens.insert().values(
            id=token_id, org_id=org.id, token_hash=credentials.token_hash(token), prefix=prefix, expires_at=expires_at
        )
    )
    if topics is not None:
        from domain import token_facts  # here: domain.uow, which it needs, imports this module

        fact = token_facts.issued_fact("scim", token_id, prefix, "scim", reason, actor)
        token_facts.ConnectionFacts(conn, topics).stage_fact(fact, org_id=org.id, org_slug=org.slug)


def get(conn: Connection, slug: str) -> Org:
    row = conn.execute(select(orgs).where(orgs.c.slug == slug)).first()
    if row is None:
        raise OrgError(f"no org {slug!r}")
    return Org.of(row)


def rotate_token(
    engine: Engine, slug: str, overlap_seconds: int, *, topics: dict[str, str] | None = None, actor: str = "cli",
    lifetime: timedelta | None = None,
) -> str:
    """Issue a new token (ending after `lifetime`, when given); older tokens keep working for
    `overlap_seconds`, then stop (revoke one to stop it now). With `topics`, the new token's
    `credential.issued` is staged with it."""
    token = credentials.new_token()
    now = datetime.now(UTC)
    with engine.begin() as conn:
        org = get(conn, slug)
        conn.execute(
            update(scim_tokens)
            .where(scim_tokens.c.org_id == org.id)
            .where((scim_tokens.c.expires_at.is_(None)) | (scim_tokens.c.expires_at > now + timedelta(seconds=overlap_seconds)))
            .values(expires_at=now + timedelta(seconds=overlap_seconds), expiry_notice_at=now)  # replaced: no warning
        )
        _insert_token(conn, org, token, "rotated", topics, actor, expires_at=now + lifetime if lifetime else None)
    return token


def authenticate(conn: Connection, token: str) -> Org | None:
    """Return the org a live (unrevoked, unexpired) token belongs to, or None; records its use at most
    once a minute (the caller commits)."""
    digest = credentials.token_hash(token)
    row = conn.execute(
        select(orgs, scim_tokens.c.token_hash, scim_tokens.c.expires_at, scim_tokens.c.revoked_at,
               scim_tokens.c.last_used_at, scim_tokens.c.id.label("token_id"))
        .join(scim_tokens, scim_tokens.c.org_id == orgs.c.id)
        .where(scim_tokens.c.token_hash == digest)
    ).first()  # fmt: skip
    if row is None or not credentials.matches(token, row.token_hash) or not tokens.is_live(row):
        return None
    tokens.touch(conn, scim_tokens, _TokenRef(row.token_id, row.last_used_at))
    return Org.of(row)


@dataclass(frozen=True)
class _TokenRef:
    id: str
    last_used_at: datetime | None


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
