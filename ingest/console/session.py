"""Console sessions: a random session id in a cookie (stored only as its hash, ended by sign-out or by
revoking the admin token that opened it), a CSRF token and sealed one-time messages keyed by it."""

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, update
from starlette.requests import Request
from starlette.responses import Response

from core import credentials
from core.tables import admin_tokens, console_sessions
from core.tables import orgs as orgs_table
from domain import admin, orgs, tokens

PREFIX = "/console"
SESSION_COOKIE = "provisioner_console"
LOGIN_COOKIE = "provisioner_console_login"
FLASH_COOKIE = "provisioner_console_flash"
SESSION_SECONDS = 8 * 3600
FLASH_SECONDS = 120
MAX_TOKEN_CHARS = 200


@dataclass(frozen=True)
class Session:
    """A signed-in admin: the session id from the cookie, the org, and the admin token that signed in."""

    token: str  # the session id (`cs_...`): the cookie's value, never the admin token
    org: orgs.Org
    admin_token_id: str = ""
    admin_token_hash: bytes = b""

    @property
    def csrf(self) -> str:
        return csrf_for(self.token)

    @property
    def actor(self) -> str:
        """Who did it, for the audit events: the admin token by its hash prefix, never in clear."""
        return f"console:adm#{self.admin_token_hash.hex()[:12]}"


def csrf_for(token: str) -> str:
    """The CSRF token of a session: an HMAC keyed by its session id, so it needs no server state."""
    digest = hmac.new(token.encode(), b"provisioner-console-csrf-v1", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def authenticate(engine: Engine, token: str) -> orgs.Org | None:
    """The org an admin token belongs to (sign-in checks the pasted token with it)."""
    with engine.begin() as conn:
        return admin.authenticate(conn, token)


def start(engine: Engine, admin_token: str) -> str | None:
    """Open a session for a live admin token: returns its new session id (for the cookie), or None."""
    with engine.begin() as conn:
        found = admin.admin_token(conn, admin_token)
        if found is None:
            return None
        session_id = credentials.new_token("cs")
        conn.execute(
            console_sessions.insert().values(
                id_hash=credentials.token_hash(session_id), org_id=found.org.id, admin_token_id=found.id,
                expires_at=datetime.now(UTC) + timedelta(seconds=SESSION_SECONDS),
            )
        )  # fmt: skip
    return session_id


def end(engine: Engine, session: Session) -> None:
    """Sign-out: the session ends server-side, so its cookie value no longer works anywhere."""
    with engine.begin() as conn:
        conn.execute(
            update(console_sessions)
            .where(console_sessions.c.id_hash == credentials.token_hash(session.token), console_sessions.c.ended_at.is_(None))
            .values(ended_at=func.now())
        )


def session_of(engine: Engine, request: Request) -> Session | None:
    """The request's session: its cookie names a session not ended or expired, whose admin token is live.
    Looked up on every request, so sign-out and revoking the token take effect at once."""
    session_id = request.cookies.get(SESSION_COOKIE, "")
    if not session_id.startswith("cs_") or len(session_id) > MAX_TOKEN_CHARS:
        return None
    with engine.begin() as conn:  # committed: the admin token's last use may be recorded
        row = conn.execute(
            select(admin_tokens, orgs_table.c.slug.label("org_slug"))
            .join(console_sessions, console_sessions.c.admin_token_id == admin_tokens.c.id)
            .join(orgs_table, orgs_table.c.id == admin_tokens.c.org_id)
            .where(
                console_sessions.c.id_hash == credentials.token_hash(session_id),
                console_sessions.c.ended_at.is_(None),
                console_sessions.c.expires_at > func.now(),
            )
        ).first()
        if row is None or not tokens.is_live(row):
            return None
        tokens.touch(conn, admin_tokens, row)
        org = orgs.Org.of(conn.execute(select(orgs_table).where(orgs_table.c.id == row.org_id)).one())
    return Session(session_id, org, admin_token_id=str(row.id), admin_token_hash=bytes(row.token_hash))


# -- one-time messages -----------------------------------------------------------------------


def _flash_key(token: str) -> bytes:
    return hmac.new(token.encode(), b"provisioner-console-flash-v1", hashlib.sha256).digest()


def seal(token: str, message: dict[str, Any]) -> str:
    """A message only this session can read (AES-GCM under a key derived from its session id)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    sealed = AESGCM(_flash_key(token)).encrypt(nonce, json.dumps(message).encode(), b"flash")
    return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def unseal(token: str, value: str) -> dict[str, Any] | None:
    """The message `seal` made for this session; None if it was made for another or tampered with."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        message = json.loads(AESGCM(_flash_key(token)).decrypt(raw[:12], raw[12:], b"flash"))
    except (ValueError, InvalidTag, json.JSONDecodeError):
        return None
    return message if isinstance(message, dict) else None


def flash_of(request: Request, session: Session) -> dict[str, Any] | None:
    """The one-time message waiting for this session, if any."""
    value = request.cookies.get(FLASH_COOKIE)
    return unseal(session.token, value) if value else None


# -- cookies ---------------------------------------------------------------------------------


class Cookies:
    """Every console cookie is HttpOnly, SameSite=Strict, scoped to the console, and Secure behind https."""

    def __init__(self, secure: bool):
        self.secure = secure

    def set(self, response: Response, name: str, value: str, max_age: int, path: str = PREFIX) -> None:
        response.set_cookie(name, value, max_age=max_age, path=path, httponly=True, samesite="strict", secure=self.secure)

    def forget(self, response: Response, name: str, path: str = PREFIX) -> None:
        response.delete_cookie(name, path=path, httponly=True, samesite="strict", secure=self.secure)
