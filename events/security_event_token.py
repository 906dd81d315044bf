"""Security Event Tokens (RFC 8417) for the operator's receiver: a CAEP `session-revoked` per
deactivated or removed member, signed ES256 (PyJWT), and the key set receivers verify them with.

The signing key is `caep_signing_key` (an EC P-256 private key in PEM) or, when that is empty,
one derived from `secret_key` (HKDF-SHA256 to a scalar), so every process of a deployment signs
with the same key without another secret to distribute. Its `kid` is the RFC 7638 thumbprint of
the public key. Ingest publishes the public half at `/.well-known/jwks.json`, and the transmitter
metadata (OpenID Shared Signals Framework) at `/.well-known/ssf-configuration`.

The subject is the member, as consumers of the member topic know them (an opaque id), within its
org (the tenant): `{"format": "complex", "user": {"format": "opaque", "id": <member id>},
"tenant": {"format": "opaque", "id": <org id>}}`. No email: a removed member's address may be
erased before the signal is delivered, and the member id is what the app keys sessions on.
"""

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.settings import Settings

SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
MEDIA_TYPE = "application/secevent+jwt"
ALGORITHM = "ES256"
# jti: a UUID (version 5) of the member event that caused the signal, so a re-staged signal is the same SET
_JTI_NAMESPACE = uuid.UUID("6f3c2a52-9d0e-4d5e-9a43-3c1d7b8e2f10")
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

REASONS = {"deactivated": "The organisation deactivated the member (SCIM or admin).",
           "removed": "The organisation removed the member (SCIM or admin)."}


def jti_for(cause_event_id: str) -> str:
    return str(uuid.uuid5(_JTI_NAMESPACE, cause_event_id))


@dataclass(frozen=True)
class Signer:
    key: ec.EllipticCurvePrivateKey
    kid: str
    issuer: str

    def jwks(self) -> dict[str, Any]:
        """The public key set receivers verify SETs with."""
        return {"keys": [{**_public_jwk(self.key.public_key()), "kid": self.kid, "use": "sig", "alg": ALGORITHM}]}

    def session_revoked(
        self, *, jti: str, audience: str, org_id: str, member_id: str, reason: str, occurred_at: datetime,
        issued_at: datetime, txn: str | None = None,
    ) -> str:
        """The signed SET for one member's sessions, revoked because of `reason` at `occurred_at`."""
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "jti": jti,
            "iat": int(issued_at.timestamp()),
            "aud": audience,
            "sub_id": {
                "format": "complex",
                "user": {"format": "opaque", "id": member_id},
                "tenant": {"format": "opaque", "id": org_id},
            },
            "events": {
                SESSION_REVOKED: {
                    "event_timestamp": int(occurred_at.timestamp()),
                    "initiating_entity": "admin",
                    "reason_admin": {"en": REASONS.get(reason, reason)},
                }
            },
        }
        if txn:
            claims["txn"] = txn
        return jwt.encode(claims, self.key, algorithm=ALGORITHM, headers={"typ": "secevent+jwt", "kid": self.kid})


def signer_for(settings: Settings) -> Signer:
    """The deployment's signer: its configured key (or the one derived from its secret), as issuer its public URL."""
    return signer(settings.caep_signing_key.get_secret_value(), settings.secret_key.get_secret_value(), settings.public_url)


def signer(signing_key_pem: str, secret_key: str, issuer: str) -> Signer:
    key = _load_or_derive(signing_key_pem, secret_key)
    return Signer(key, _thumbprint(key.public_key()), issuer.rstrip("/"))


@lru_cache(maxsize=4)
def _load_or_derive(signing_key_pem: str, secret_key: str) -> ec.EllipticCurvePrivateKey:
    if signing_key_pem.strip():
        key = serialization.load_pem_private_key(signing_key_pem.encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ValueError("caep_signing_key must be an EC P-256 private key in PEM (ES256)")
        return key
    seed = HKDF(algorithm=hashes.SHA256(), length=48, salt=None, info=b"provisioner-caep-set-v1").derive(secret_key.encode())
    return ec.derive_private_key(int.from_bytes(seed, "big") % (_P256_ORDER - 1) + 1, ec.SECP256R1())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _public_jwk(public: ec.EllipticCurvePublicKey) -> dict[str, str]:
    numbers = public.public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": _b64(numbers.x.to_bytes(32, "big")), "y": _b64(numbers.y.to_bytes(32, "big"))}


def _thumbprint(public: ec.EllipticCurvePublicKey) -> str:
    """RFC 7638: SHA-256 of the required members, in lexical order, without spaces."""
    canonical = json.dumps(_public_jwk(public), sort_keys=True, separators=(",", ":")).encode()
    return _b64(hashlib.sha256(canonical).digest())


def transmitter_configuration(signer: Signer, public_url: str) -> dict[str, Any]:
    """OpenID Shared Signals Framework transmitter metadata: who signs, with which keys, how it pushes."""
    base = public_url.rstrip("/")
    return {
        "spec_version": "1_0",
        "issuer": signer.issuer,
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "delivery_methods_supported": ["urn:ietf:rfc:8935"],
    }
