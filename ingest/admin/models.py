"""The admin API's request and response models: what its OpenAPI document publishes as schemas."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

# A model's docstring is its schema's description in the OpenAPI document: adding or changing one
# changes the committed document (schemas/openapi/admin.json).

# domain.model.MemberStatus as the API's contract spells it (plus `conflict`, shown while one is open);
# a unit test keeps them equal
LifecycleStatus = Literal["provisioned", "active", "deactivated", "removed"]
ShownStatus = Literal["provisioned", "active", "deactivated", "conflict", "removed"]


class Problem(BaseModel):
    """Every error response."""

    status: int = Field(examples=[404])
    detail: str = Field(examples=["no such member in this organisation"])


class OrgSettings(BaseModel):
    manual_provisioning: bool = Field(description="Admins may add members by hand (POST /org/members).")
    sso_provisioning: bool = Field(description="A first SSO sign-in creates the member (just in time).")
    scim_enabled: bool = Field(description="The org's IdP may push users and groups over SCIM.")
    seat_limit: int | None = Field(
        None, description="Billed seats the org's plan includes (members signed in and not deactivated); null: no limit."
    )
    seat_policy: Literal["refuse", "allow"] = Field(
        "refuse",
        description="Past the limit: `refuse` the sign-in that would take a seat (the member stays provisioned), "
        "or `allow` it and emit `billing.seat.overage`.",
    )


class OrgOut(BaseModel):
    id: str
    slug: str
    name: str
    settings: OrgSettings
    scim_base_url: str | None = Field(None, description="Present only while SCIM is enabled.")


class SettingsChange(BaseModel):
    """The settings to change; an omitted (or null) toggle keeps its value. `seat_limit` changes
    whenever it is given: a number of seats, or null for no limit."""

    model_config = ConfigDict(extra="forbid")

    manual_provisioning: StrictBool | None = None
    sso_provisioning: StrictBool | None = None
    scim_enabled: StrictBool | None = None
    seat_limit: StrictInt | None = Field(None, ge=0, le=10_000_000)
    seat_policy: Literal["refuse", "allow"] | None = None
    remove_sso_members: StrictBool = Field(
        False,
        description="With `sso_provisioning: false`: also remove every member created just in time by SSO "
        "(their billed seats are released).",
    )

    @model_validator(mode="after")
    def _removal_turns_jit_off(self) -> "SettingsChange":
        if self.remove_sso_members and self.sso_provisioning is not False:
            raise ValueError("remove_sso_members needs sso_provisioning: false in the same change")
        return self


class RotateToken(BaseModel):
    """How long the new SCIM token lasts; without `expires_in_days` it lasts until rotated or revoked."""

    model_config = ConfigDict(extra="forbid")

    expires_in_days: StrictInt | None = Field(
        None, ge=1, le=3650, description="The new token stops after this many days; `credential.expiring` comes before."
    )


class RotatedToken(BaseModel):
    scim_token: str = Field(description="The new SCIM bearer token. Shown once: it is stored only as a hash.")
    scim_base_url: str
    previous_tokens_valid_for_seconds: int = Field(description="How long the tokens issued before keep working.")
    expires_at: datetime | None = Field(None, description="When the new token stops working; null: no expiry.")


class Member(BaseModel):
    id: str
    email: str | None
    user_name: str | None
    display_name: str | None
    given_name: str | None = Field(description="`name.givenName` as the IdP sent it.")
    family_name: str | None = Field(description="`name.familyName` as the IdP sent it.")
    status: ShownStatus = Field(
        description="`conflict` while an email conflict is open, whatever the lifecycle status."
    )
    lifecycle_status: LifecycleStatus
    error: str | None = Field(description="Why the member is in conflict, and what to do; null otherwise.")
    account_id: str | None = Field(description="The SaaS account this member is, once acquired.")
    source: str = Field(description="How the member arrived: `scim`, `sso` or `manual`.")
    scim_user_id: str | None
    first_login_at: datetime | None
    created_at: datetime
    updated_at: datetime


class MemberPage(BaseModel):
    """One page of members, oldest first."""

    members: list[Member]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
    previous_cursor: str | None = Field(
        description="Pass as `before` for the page before this one; null on the first page."
    )


class MemberCounts(BaseModel):
    """Members per shown status (an open conflict counts as `conflict`, not as its lifecycle status)."""

    provisioned: int
    active: int
    deactivated: int
    removed: int
    conflict: int
    total: int = Field(description="Every member but the removed ones.")


class NewMember(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=320, examples=["ann@example.com"])
    display_name: str | None = Field(None, max_length=256, examples=["Ann Example"])


class AddedMember(BaseModel):
    event_id: str = Field(description="The `member.manually_added` event; the member appears once it is applied.")
    member_id: str = Field(description="The id the member will have (stable: it survives email changes).")
    email: str


class RemovedMember(BaseModel):
    event_id: str = Field(description="The `member.manually_removed` event; the member is removed once it is applied.")
    member_id: str


class Activity(BaseModel):
    event_id: str
    type: str = Field(description="The CloudEvents type of what arrived, e.g. `io.provisioner.login.succeeded`.")
    source: str = Field(description="Where it came from: `scim`, `sso`, `app` or `manual`.")
    summary: dict[str, Any]
    at: datetime


class Conflict(BaseModel):
    id: str
    member_id: str
    account_id: str
    email: str | None
    status: Literal["open", "acquired", "dismissed"]
    error: str
    created_at: datetime
    resolved_at: datetime | None


class Resolution(BaseModel):
    id: str
    status: Literal["acquired", "dismissed"]
    member_id: str
    account_id: str


class OidcConnection(BaseModel):
    configured: bool
    issuer: str | None = None
    client_id: str | None = None
    login_url: str = Field(description="Where members start an OIDC sign-in.")
    redirect_uri: str = Field(description="The redirect URI to register at the OpenID Provider.")


class SamlConnection(BaseModel):
    configured: bool
    idp_entity_id: str | None = None
    idp_sso_url: str | None = None
    idp_metadata_url: str | None = Field(None, description="The IdP metadata URL, when configured from one.")
    login_url: str = Field(description="Where members start a SAML sign-in (SP-initiated).")
    acs_url: str = Field(description="Assertion Consumer Service URL to give the IdP.")
    entity_id: str = Field(description="Our service provider's entity id (audience).")
    metadata_url: str = Field(description="Our service provider metadata, to upload to the IdP.")


class SsoOut(BaseModel):
    """Never includes the OIDC client secret."""

    sso_provisioning: bool
    oidc: OidcConnection
    saml: SamlConnection


class OidcConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    issuer: str = Field(max_length=2048, examples=["https://idp.example.com"])
    client_id: str = Field(min_length=1, max_length=1024)
    client_secret: str = Field(min_length=1, max_length=4096, json_schema_extra={"writeOnly": True})


class OidcConfigured(BaseModel):
    login_url: str
    redirect_uri: str
    issuer: str


class SamlConfig(BaseModel):
    """Exactly one of `metadata_xml` (the IdP metadata document) and `metadata_url` (https)."""

    model_config = ConfigDict(extra="forbid")

    metadata_xml: str | None = None
    metadata_url: str | None = Field(None, max_length=2048, examples=["https://idp.example.com/saml/metadata"])

    @model_validator(mode="after")
    def _exactly_one(self) -> "SamlConfig":
        if bool(self.metadata_xml) == bool(self.metadata_url):
            raise ValueError("give exactly one of metadata_xml and metadata_url")
        return self


class SamlConfigured(BaseModel):
    login_url: str
    acs_url: str
    entity_id: str
    metadata_url: str


class AuditEntry(BaseModel):
    """One SCIM request made with this organisation's credential. Bodies are never kept."""

    id: int
    at: datetime = Field(description="When the request arrived.")
    method: str
    path: str = Field(examples=["/scim/acme/v2/Users/0b1e..."])
    query: str | None = Field(
        description="The query string with values that may hold personal data replaced by `?` "
        '(filter values always, e.g. `filter=userName eq "?"`).'
    )
    status: int = Field(description="The HTTP status answered.")
    duration_ms: float
    user_agent: str | None
    request_id: str = Field(description="The `X-Request-Id` of the response (the IdP's own, when it sent one).")
    client_address: str | None


class ConflictPage(BaseModel):
    """One page of conflicts, oldest first."""

    conflicts: list[Conflict]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class AuditPage(BaseModel):
    entries: list[AuditEntry] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Pass as `cursor` to get older entries; null on the last page.")
