"""Console sessions: the admin token in a cookie, a CSRF token and sealed one-time messages keyed by it."""

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import Response

from domain import admin, orgs

PREFIX = "/console"
SESSION_COOKIE = "provisioner_console"
LOGIN_COOKIE = "provisioner_console_login"
FLASH_COOKIE = "provisioner_console_flash"
SESSION_SECONDS = 8 * 3600
FLASH_SECONDS = 120
MAX_TOKEN_CHARS = 200


@dataclass(frozen=True)
class Session:
    """A signed-in admin: the admin token from the cookie and the org it authenticated as."""

    token: str
    org: orgs.Org

    @property
    def csrf(self) -> str:
        return csrf_for(self.token)

    @property
    def actor(self) -> str:
        """Who did it, for the audit events: the admin token by its hash prefix, never in clear."""
        return f"console:adm#{hashlib.sha256(self.token.encode()).hexdigest()[:12]}"


def csrf_for(token: str) -> str:
    """The CSRF token of a session: an HMAC keyed by its admin token, so it needs no server state."""
    digest = hmac.new(token.encode(), b"provisioner-console-csrf-v1", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def authenticate(engine: Engine, token: str) -> orgs.Org | None:
    """The org an admin token belongs to, looked up on every request so a deleted token ends its sessions."""
    with engine.connect() as conn:
        return admin.authenticate(conn, token)


def session_of(engine: Engine, request: Request) -> Session | None:
    """The request's session, if its cookie holds a live admin token."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    org = authenticate(engine, token)
    return Session(token, org) if org else None


# -- one-time messages -----------------------------------------------------------------------


def _flash_key(token: str) -> bytes:
    return hmac.new(token.encode(), b"provisioner-console-flash-v1", hashlib.sha256).digest()


def seal(token: str, message: dict[str, Any]) -> str:
    """A message only this session can read (AES-GCM under a key derived from its admin token)."""
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
