"""A SAML IdP's metadata: parsed into what sign-in needs, or fetched from its URL through `outbound`.

A fetched document that cannot be used gives one message, whatever the cause (nothing listening, a
reset, a timeout, an error status, XML that is not IdP metadata): what answers at a URL is never told.
Metadata given as XML gets the parser's own reasons.
"""

import ipaddress
import logging
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from core.settings import Settings
from ingest.sso import outbound

log = logging.getLogger("provisioner.sso")

UNUSABLE = ("could not read SAML IdP metadata from this URL (its address must be public, it must answer within the "
            "timeouts with valid IdP metadata: an entityID, an HTTP-Redirect SingleSignOnService, a signing certificate)")


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def parse_metadata(xml: str) -> dict[str, Any]:
    """The IdP's entity id, HTTP-Redirect SSO URL and signing certificates, or ValueError."""
    try:
        idp = OneLogin_Saml2_IdPMetadataParser.parse(xml, required_sso_binding=C.BINDING_HTTP_REDIRECT).get("idp", {})
    except Exception as exc:
        raise ValueError(f"IdP metadata is not valid SAML metadata XML: {exc}") from None
    entity_id = idp.get("entityId")
    sso_url = idp.get("singleSignOnService", {}).get("url")
    certs = idp.get("x509certMulti", {}).get("signing") or ([idp["x509cert"]] if idp.get("x509cert") else [])
    if not entity_id:
        raise ValueError("IdP metadata has no IDPSSODescriptor with an entityID")
    if not sso_url or urlsplit(sso_url).scheme not in ("https", "http"):
        raise ValueError("IdP metadata has no SingleSignOnService with the HTTP-Redirect binding")
    if not certs:
        raise ValueError("IdP metadata has no signing certificate")
    for cert in certs:
        try:
            x509.load_pem_x509_certificate(OneLogin_Saml2_Utils.format_cert(cert).encode())
        except Exception:
            raise ValueError("IdP metadata holds a signing certificate that is not valid X.509") from None
    return {"idp_entity_id": entity_id, "sso_url": sso_url, "certs": certs}


def fetched_metadata(settings: Settings, slug: str, metadata_url: str) -> dict[str, Any]:
    """The parsed metadata at an https URL (http on loopback only), or ValueError: UNUSABLE for any fetch failure.

    outbound.Busy (the org's calls are all in flight) passes through: the caller answers "try again"."""
    try:
        parts = urlsplit(metadata_url)
        scheme, host = parts.scheme, parts.hostname
    except ValueError:
        scheme, host = "", None
    if scheme != "https" and not (scheme == "http" and _is_loopback(host)):
        raise ValueError("metadata URL must be https (http is allowed on loopback only)")
    outbound.check_syntax(metadata_url)
    try:
        reply = outbound.call(settings, slug, "GET", metadata_url, headers={"Accept": "application/samlmetadata+xml, */*"})
        if reply.status_code != 200:
            raise outbound.Unreachable(f"status {reply.status_code}")
        return parse_metadata(reply.text)
    except ValueError as exc:  # Unreachable is one too; a parse failure is logged like a fetch failure
        log.warning("unusable SAML IdP metadata", extra={"org": slug, "url": metadata_url[:300], "reason": str(exc)[:300]})
        raise ValueError(UNUSABLE) from None
