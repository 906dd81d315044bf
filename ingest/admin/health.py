"""The admin API's IdP health route: is the org's SCIM client still syncing, and if not, why."""

from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from domain import idp_health
from ingest.admin.deps import Admin, Api, resource_router
from ingest.admin.errors import ERRORS

router = resource_router("health")


class LastHour(BaseModel):
    """The org's SCIM requests in the last hour, by outcome."""

    ok: int = Field(alias="2xx", description="Served (2xx).")
    auth: int = Field(alias="401", description="Refused for the credential (401, 403): revoked, expired, another org's.")
    client: int = Field(alias="4xx", description="Other client errors (400, 404, 409, 413, ...).")
    throttled: int = Field(alias="429", description="Over the org's rate limit.")
    server: int = Field(alias="5xx", description="Server errors and unavailability.")


class ScimTokenUse(BaseModel):
    id: str
    prefix: str
    created_at: str
    last_used_at: str | None = Field(description="Recorded at most once a minute.")
    expires_at: str | None = Field(description="When the token stops working: its lifetime, or the overlap after a rotation.")
    revoked_at: str | None
    live: bool
    expires_soon: bool = Field(description="Live and ending within PROVISIONER_SCIM_TOKEN_WARNING_DAYS: rotate it.")


class OrgHealth(BaseModel):
    """The state of the org's IdP connection (see docs/admin-api.md for each state's rule) and what it rests on."""

    state: Literal["healthy", "quiet", "failing_auth", "failing_requests", "not_connected", "disabled"]
    last_request_at: datetime | None
    last_success_at: datetime | None = Field(description="The last request answered with a working credential.")
    last_write_at: datetime | None = Field(description="The last successful SCIM create, replace, PATCH or delete.")
    last_auth_failure_at: datetime | None
    last_failure_at: datetime | None = Field(description="The last 5xx or 429.")
    last_failure_status: int | None
    usual_interval_seconds: float | None = Field(description="The usual time between the IdP's sync cycles, as seen so far.")
    last_hour: LastHour
    scim_tokens: list[ScimTokenUse]


@router.get("/org/health", response_model=OrgHealth, response_model_by_alias=True, responses=ERRORS)
def get_health(who: Admin, api: Api) -> OrgHealth:
    """Is the organisation's IdP still syncing: its state, last use per SCIM token, last successful
    write, and the last hour's requests by outcome (from the SCIM audit trail)."""
    settings = api.settings
    with api.transaction(who) as (uow, org):
        shown = idp_health.report(
            uow.conn, org.id, org.scim_enabled, datetime.now(UTC),
            window=timedelta(seconds=settings.idp_health_window_seconds),
            usual_default=timedelta(seconds=settings.idp_health_usual_seconds),
            token_warning=timedelta(days=settings.scim_token_warning_days),
        )  # fmt: skip
    return OrgHealth.model_validate(shown)
