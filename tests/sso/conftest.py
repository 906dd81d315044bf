"""Fixtures of the SSO tests: the OpenID Provider's, defined in conftest_oidc, are registered here."""

from tests.sso.conftest_oidc import browser, forging_provider, oidc_org, openid_provider

__all__ = ["browser", "forging_provider", "oidc_org", "openid_provider"]
