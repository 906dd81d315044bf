"""The admin API's SSO routes: what is configured, and connecting an OpenID Provider or a SAML IdP."""

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from domain import admin, sso_config
from ingest.admin.deps import Admin, Api, Caller, Service, resource_router
from ingest.admin.errors import ERRORS, WITH_BODY, documented
from ingest.admin.models import OidcConfig, OidcConfigured, OidcConnection, SamlConfig, SamlConfigured, SamlConnection, SsoOut
from ingest.sso import oidc, outbound, saml

router = resource_router("sso")


@router.get("/org/sso", response_model=SsoOut, responses=ERRORS)
def get_sso(who: Admin, api: Api) -> SsoOut:
    """Which protocols are configured, and the URLs to give the IdP (client secrets are never returned)."""
    with api.transaction(who) as (uow, org):
        o, s = sso_config.get(uow.conn, org.id, "oidc"), sso_config.get(uow.conn, org.id, "saml")
    return SsoOut(
        sso_provisioning=org.sso_provisioning,
        oidc=OidcConnection(
            configured=o is not None, issuer=(o or {}).get("issuer"), client_id=(o or {}).get("client_id"),
            **oidc.urls(api.settings, org.slug),
        ),
        saml=SamlConnection(
            configured=s is not None, idp_entity_id=(s or {}).get("idp_entity_id"), idp_sso_url=(s or {}).get("sso_url"),
            idp_metadata_url=(s or {}).get("metadata_url"), **saml.urls(api.settings, org.slug),
        ),
    )


@router.put("/org/sso/oidc", response_model=OidcConfigured, responses=documented(400, *WITH_BODY))
def configure_oidc(config: OidcConfig, who: Admin, api: Api) -> OidcConfigured:
    """Connect an OpenID Provider (its discovery document must name exactly this issuer)."""
    return OidcConfigured(**_configure(oidc.configure, config, who, api))


@router.put("/org/sso/saml", response_model=SamlConfigured, responses=documented(400, *WITH_BODY))
def configure_saml(config: SamlConfig, who: Admin, api: Api) -> SamlConfigured:
    """Connect a SAML IdP from its metadata (the XML, or an https URL to fetch it from)."""
    return SamlConfigured(**_configure(saml.configure, config, who, api))


def _configure(configure: Callable[..., dict[str, Any]], config: BaseModel, who: Caller, api: Service) -> dict[str, Any]:
    """Save a connection through its protocol's own checks; a refusal is a 400 with the reason (one reason for
    every failure to fetch from the IdP), a 503 while the org's IdP calls are all in flight."""
    try:
        return configure(api.engine, api.settings, who.org.slug, actor=who.actor, **config.model_dump())
    except outbound.Busy:
        raise admin.AdminError(503, BUSY) from None
    except ValueError as exc:
        raise admin.AdminError(400, str(exc)) from None


BUSY = "this organisation's identity provider is already being called; try again in a moment"
