"""The pure rules of credentials: what a list shows of a token, when a token is live, a service token's
scope, and which SSO changes are a fact."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from core import credentials
from domain import sso_config, tokens
from domain.service_tokens import ServiceCaller

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_the_prefix_is_the_kind_and_a_few_characters_never_enough_to_use():
    token = credentials.new_token("adm")
    prefix = credentials.prefix_of(token)
    assert token.startswith(prefix) and prefix.startswith("adm_") and len(prefix) == 12
    assert len(token) - len(prefix) >= 35  # what stays secret: over 200 random bits


@pytest.mark.parametrize(
    ("revoked_at", "expires_at", "live"),
    [
        (None, None, True),
        (None, NOW + timedelta(seconds=1), True),  # in a rotation's overlap
        (None, NOW, False),
        (NOW - timedelta(days=1), None, False),
        (NOW - timedelta(days=1), NOW + timedelta(hours=1), False),  # revoked inside its overlap: stops now
    ],
)
def test_a_token_is_live_until_revoked_or_expired(revoked_at, expires_at, live):
    assert tokens.is_live(SimpleNamespace(revoked_at=revoked_at, expires_at=expires_at), NOW) is live


def test_a_token_without_expiry_is_live_until_revoked():
    assert tokens.is_live(SimpleNamespace(revoked_at=None), NOW)  # admin and service tokens have no expires_at


def test_an_unscoped_service_token_acts_for_every_org_and_a_scoped_one_for_its_own():
    assert ServiceCaller("app", "t1").may_act_for("any-org")
    scoped = ServiceCaller("app", "t2", frozenset({"org-a"}))
    assert scoped.may_act_for("org-a") and not scoped.may_act_for("org-b")
    assert not ServiceCaller("app", "t3", frozenset()).may_act_for("org-a")  # scoped to none: none


def test_an_sso_fact_names_the_changed_settings_only():
    before = {"issuer": "https://a.example", "client_secret_sealed": "v1:old"}
    fact = sso_config.configured_fact("oidc", before, {**before, "client_secret_sealed": "v1:new"}, "cli")
    assert fact is not None and fact.data() == {
        "protocol": "oidc",
        "created": False,
        "changed": ["client_secret_sealed"],
        "actor": "cli",
    }
    assert sso_config.configured_fact("oidc", before, dict(before), "cli") is None
    assert sso_config.configured_fact("saml", None, {}, "cli").data()["created"] is True  # type: ignore[union-attr]


def test_a_lookup_by_a_malformed_id_is_404_without_a_query():
    with pytest.raises(tokens.TokenError) as refused:
        tokens.find(None, "1; DROP TABLE admin_tokens", ("admin",))  # type: ignore[arg-type]
    assert refused.value.status == 404
