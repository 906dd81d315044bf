"""Fixtures of the SSO tests: the OpenID Provider's (conftest_oidc) and the SAML IdP's (conftest_saml)."""

from tests.sso.conftest_oidc import browser, forging_provider, oidc_org, openid_provider
from tests.sso.conftest_saml import idp

__all__ = ["browser", "forging_provider", "idp", "oidc_org", "openid_provider"]
