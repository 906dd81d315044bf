"""Secrets the system must present later (an OIDC client secret), stored encrypted, never in clear.

Bearer tokens are kept as hashes (core.credentials); a client secret cannot be, since the token
endpoint needs it. It is sealed with Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`)
under `PROVISIONER_SECRET_KEY`. That setting may list several keys, comma-separated: the first
seals, all of them open, so a key is rotated by prepending a new one and re-saving the secrets.
"""

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.settings import Settings


class SealError(ValueError):
    """A sealed value that none of the configured keys opens."""


def _fernet(passphrase: str) -> Fernet:
    """A Fernet key derived from any configured string (HKDF-SHA256), so operators set one secret."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"provisioner-sealed-v1").derive(passphrase.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def _box(settings: Settings) -> MultiFernet:
    keys = [k.strip() for k in settings.secret_key.get_secret_value().split(",") if k.strip()]
    if not keys:
        raise SealError("PROVISIONER_SECRET_KEY is empty")
    return MultiFernet([_fernet(k) for k in keys])


def seal(settings: Settings, plaintext: str) -> str:
    return _box(settings).encrypt(plaintext.encode()).decode()


def open_sealed(settings: Settings, sealed: str) -> str:
    try:
        return _box(settings).decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise SealError("the sealed secret does not open with PROVISIONER_SECRET_KEY (was the key changed?)") from None
