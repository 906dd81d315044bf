"""Bearer tokens: 256-bit random, shown once, stored only as SHA-256, compared in constant time."""

import hashlib
import hmac
import secrets

TOKEN_BYTES = 32


def new_token(prefix: str = "scim") -> str:
    return f"{prefix}_{secrets.token_urlsafe(TOKEN_BYTES)}"


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def matches(token: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(token_hash(token), stored_hash)


PREFIX_CHARS = 12  # the kind and 8 random characters: enough to tell tokens apart, far too few to guess one
LAST_USED_EVERY_SECONDS = 60


def prefix_of(token: str) -> str:
    """The non-secret part of a token shown in lists (`adm_Ab12Cd34`), so its holder can recognise it."""
    return token[:PREFIX_CHARS]
