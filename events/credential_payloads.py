"""The bodies of the audit facts about credentials and SSO connections (their types are in `events.catalogue`):
which token or connection changed and who changed it, never a secret."""

from dataclasses import dataclass

from events.envelope import Payload


@dataclass(frozen=True)
class CredentialFact(Payload):
    """A token issued or revoked: its kind (`admin`, `scim`), id and non-secret prefix; keyed by the org,
    so an org's credential changes are in order."""

    SUBJECT = "orgs/{org_id}/credentials/{token_id}"
    KEY = "{org_id}"
    kind: str
    token_id: str
    prefix: str
    name: str
    reason: str
    actor: str


@dataclass(frozen=True)
class SsoConfiguredFact(Payload):
    """An org's SSO connection for one protocol was stored or changed: the names of the settings that
    changed (never their values: one is a sealed client secret)."""

    SUBJECT = "orgs/{org_id}/sso/{protocol}"
    KEY = "{org_id}"
    protocol: str
    created: bool
    changed: list[str]
    actor: str


@dataclass(frozen=True)
class CredentialExpiringFact(Payload):
    """A SCIM token issued with a lifetime expires soon: rotate it and paste the new one into the IdP.
    Once per token, some days before (`PROVISIONER_SCIM_TOKEN_WARNING_DAYS`); never for a token a
    rotation replaced."""

    SUBJECT = "orgs/{org_id}/credentials/{token_id}"
    KEY = "{org_id}"
    kind: str
    token_id: str
    prefix: str
    expires_at: str
