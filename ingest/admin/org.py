"""The admin API's org routes: the org and its provisioning settings, and the SCIM token."""

from datetime import UTC, datetime

from domain import admin, orgs, token_expiry
from ingest.admin.deps import Admin, Api, Service, resource_router
from ingest.admin.errors import ERRORS, WITH_BODY, documented
from ingest.admin.models import OrgOut, OrgSettings, RotatedToken, RotateToken, SettingsChange

router = resource_router("org")


def _org_out(api: Service, org: orgs.Org) -> OrgOut:
    return OrgOut(
        id=org.id, slug=org.slug, name=org.name, settings=OrgSettings(**admin.settings_of(org)),
        scim_base_url=orgs.scim_base_url(api.settings.public_url, org.slug) if org.scim_enabled else None,
    )


@router.get("/org", response_model=OrgOut, response_model_exclude_none=True, responses=ERRORS)
def get_org(who: Admin, api: Api) -> OrgOut:
    """The admin token's organisation and its provisioning settings."""
    with api.transaction(who) as (_, org):
        return _org_out(api, org)


@router.patch("/org/settings", response_model=OrgSettings, responses=documented(*WITH_BODY))
def change_settings(change: SettingsChange, who: Admin, api: Api) -> OrgSettings:
    """Change provisioning toggles and the seat limit; an `org.settings.changed` event records before
    and after. `remove_sso_members` (with `sso_provisioning: false`) removes the members SSO created."""
    values = change.model_dump(exclude_unset=True)
    remove_sso = values.pop("remove_sso_members", False)
    with api.transaction(who, lock=True) as (uow, org):
        org = admin.change_settings(uow, org, who.actor, **values)
        if remove_sso:
            admin.remove_sso_members(uow, org, who.actor)
            org = uow.orgs.lock(org.id)
        return OrgSettings(**admin.settings_of(org))


@router.post("/org/scim-token/rotate", response_model=RotatedToken, responses=documented(*WITH_BODY))
def rotate_scim_token(who: Admin, api: Api, body: RotateToken | None = None) -> RotatedToken:
    """Issue a new SCIM token, optionally with a lifetime (`{"expires_in_days": 90}`); tokens issued
    before keep working for the overlap, then stop. To stop a leaked one at once, revoke it:
    `DELETE /org/tokens/{id}`."""
    overlap, days = api.settings.token_overlap_seconds, body.expires_in_days if body else None
    lifetime = token_expiry.lifetime(days)
    token = orgs.rotate_token(api.engine, who.org.slug, overlap, topics=api.topics, actor=who.actor, lifetime=lifetime)
    return RotatedToken(
        scim_token=token, scim_base_url=orgs.scim_base_url(api.settings.public_url, who.org.slug),
        previous_tokens_valid_for_seconds=overlap,
        expires_at=datetime.now(UTC) + lifetime if lifetime else None,
    )
