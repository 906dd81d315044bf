"""Refusals never expose library internals (pydantic links, model class names, error types, echoed
input), and the admin API refuses what is not an email address where one is required."""

import httpx
import pytest

from domain import admin
from domain.model import is_email
from ingest.http import public_detail

pytestmark = pytest.mark.security

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
INTERNALS = ("pydantic", "validation error for", "[type=", "input_value", "input_type", "traceback", "sqlalchemy", "psycopg")

ADMIN_REQUESTS = [
    ("PATCH", "/org/settings", {"scim_enabled": "maybe"}),
    ("PATCH", "/org/settings", {"seat_limit": -1}),
    ("PATCH", "/org/settings", [1, 2]),
    ("POST", "/org/members", {"email": 5}),
    ("POST", "/org/members", {"email": '"><svg/onload=alert(4)>@x.com'}),
    ("POST", "/org/members", {"email": "a@b@c"}),
    ("PUT", "/org/sso/oidc", {"issuer": "not a url", "client_id": 1, "client_secret": None}),
    ("PUT", "/org/sso/saml", {"metadata_url": "ftp://x", "metadata_xml": "<x/>"}),
    ("PUT", "/org/sso/saml", {"metadata_xml": "<not-saml/>"}),
    ("GET", "/org/scim-audit?since=yesterday&cursor=%%%", None),
    ("GET", "/org/members?status=sideways", None),
    ("POST", "/org/domains", {"domain": "-"}),
]

SCIM_REQUESTS = [
    ("POST", "/Users", {"schemas": [USER], "userName": 5}),
    ("POST", "/Users", {"schemas": [USER], "userName": "a", "emails": "x"}),
    ("POST", "/Users", {"schemas": [USER], "userName": "a", "name": 3, "active": "perhaps"}),
    ("POST", "/Users", {"schemas": ["urn:nope"], "userName": "a"}),
    ("PATCH", "/Users/x", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": "x"}),
    ("POST", "/Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "members": [{"value": 1}]}),
]


def _assert_clean(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, response.text
    text = response.text.lower()
    assert not [word for word in INTERNALS if word in text], response.text


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_REQUESTS)
def test_admin_refusals_carry_no_library_internals(server, engine, scim_org, method, path, body):
    token = admin.create_admin_token(engine, scim_org.slug)
    response = httpx.request(
        method, f"{server}/admin/v1{path}", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=15
    )
    _assert_clean(response)
    assert set(response.json()) == {"status", "detail"}


@pytest.mark.parametrize(("method", "path", "body"), SCIM_REQUESTS)
def test_scim_refusals_carry_no_library_internals(scim_org, method, path, body):
    _assert_clean(scim_org.client.request(method, scim_org.base_url + path, json=body))


def test_the_admin_api_refuses_markup_as_an_email(server, engine, scim_org):
    token = admin.create_admin_token(engine, scim_org.slug)
    response = httpx.post(
        f"{server}/admin/v1/org/members", json={"email": '"><svg/onload=alert(4)>@x.com'},
        headers={"Authorization": f"Bearer {token}"}, timeout=15,
    )
    assert response.status_code == 400, response.text
    assert "svg" not in response.text  # the refusal does not echo the markup either


@pytest.mark.parametrize(
    "value", ['"><svg/onload=alert(4)>@x.com', '"quoted"@x.com', "a b@x.com", "a@x..com", "a@-x.com", "a@b", "a@[127.0.0.1]",
              "a@x.com\n", "@x.com", "a@", "a" * 310 + "@example.com"],
)
def test_is_email_refuses(value):
    assert not is_email(value)


@pytest.mark.parametrize("value", ["a@example.test", "A.B+tag@Example.COM", "o'brien@example.com", "üñí@exämple.de"])
def test_is_email_accepts(value):
    assert is_email(value)


def test_a_validation_error_text_is_reduced_to_field_and_message():
    raw = (
        "2 validation errors for OidcDiscovery\nissuer\n  Input should be a valid URL [type=url_parsing, input_value='x', "
        "input_type=str]\n    For further information visit https://errors.pydantic.dev/2.14/v/url_parsing\nn\n  Field required"
    )
    assert public_detail(raw) == "issuer: Input should be a valid URL; n: Field required"
    assert public_detail("could not read it: 1 validation error for X\nissuer\n  Field required") == (
        "could not read it: issuer: Field required"
    )
    assert public_detail("'email' is required") == "'email' is required"
