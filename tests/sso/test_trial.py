"""Test sign-ins (ingest/sso/trial.py) against the real OpenID Provider and the real SAML IdP.

A test sign-in runs every check of a real one, reports what the IdP sent and the verdict of the
org's rules, and records nothing: no login event, no member, no seat claim, no identity binding.
"""

import base64
import re
import uuid
from urllib.parse import urljoin

import httpx
import pytest
from lxml import etree
from sqlalchemy import Engine, select, text

from core.settings import Settings
from core.tables import members
from domain import orgs
from domain.model import SEAT_LIMIT_REACHED, SIGN_IN_REFUSED
from ingest.sso import oidc, saml, trial
from tests.conftest import ScimOrg
from tests.sso.conftest_oidc import Browser, OidcOrg, outbox_events, redirect_uri
from tests.sso.conftest_saml import connect, form_of

pytestmark = pytest.mark.sso

ACTOR = "console:adm#0123456789ab"
RESULT = re.compile(r'url=/console/sso/tests/([A-Za-z0-9_-]+)"')


def recorded(engine: Engine, org_id: str) -> dict[str, int]:
    """Everything a sign-in can write for an org (SSO configuration events aside)."""
    with engine.connect() as conn:
        counts = {
            table: conn.execute(text(f"SELECT count(*) FROM {table} WHERE org_id = :o"), {"o": org_id}).scalar_one()
            for table in ("members", "seat_claims", "member_identities", "pending_logins")
        }
    return counts | {"events": len(outbox_events(engine, org_id))}


def report_of(engine: Engine, org_id: str, finished: httpx.Response) -> dict:
    """The page the IdP's answer gets moves the browser to the console's result; the report behind it."""
    assert finished.status_code == 200, finished.text
    test_id = RESULT.search(finished.text).group(1)
    with engine.connect() as conn:
        report = trial.load(conn, org_id, test_id)
    assert report is not None
    return report


def member_row(engine: Engine, org_id: str, email: str) -> str:
    """A member as the membership worker leaves a pushed user (no worker runs on this stack)."""
    member_id = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(members.insert().values(id=member_id, org_id=org_id, email=email, email_ci=email.lower(),
                                             user_name=email, status="provisioned", source="scim"))
    return member_id


# --- OpenID Connect -------------------------------------------------------------------------------


def oidc_test(settings: Settings, engine: Engine, slug: str, email: str, **form) -> httpx.Response:
    """Start a test from the console's side, sign in at the OP (a fresh browser: the OP forgets the
    person), and return our callback's answer."""
    started = oidc.start_test(settings, engine, slug, ACTOR)
    assert started.status_code == 302
    cookie = re.search(rf"{oidc.COOKIE}=([^;]+)", started.headers["set-cookie"]).group(1)
    callback, browser = redirect_uri(settings, slug), Browser()
    try:
        page = browser.follow(browser.request("GET", started.headers["location"]), stop_at=callback)
        action = urljoin(str(page.url), re.search(r'action="([^"]+)"', page.text).group(1))
        to_callback = browser.follow(browser.request("POST", action, data={"email": email, **form}), stop_at=callback)
        assert to_callback.is_redirect, to_callback.text
        url = urljoin(str(to_callback.url), to_callback.headers["location"])
        return browser.request("GET", url, headers={"Cookie": f"{oidc.COOKIE}={cookie}"})
    finally:
        browser.close()


def test_oidc_stranger_with_sso_provisioning_off_would_be_refused_by_the_org(settings, engine, oidc_org: OidcOrg):
    before = recorded(engine, oidc_org.scim.id)
    finished = oidc_test(settings, engine, oidc_org.slug, "Stranger@Example.com")
    report = report_of(engine, oidc_org.scim.id, finished)
    assert report["accepted"] is False and report["stage"] == "organisation"
    assert report["reason"] == SIGN_IN_REFUSED
    assert report["verified"] is True and report["by"] == ACTOR and report["protocol"] == "oidc"
    sent = dict(report["sent"])
    assert sent["email"] == "Stranger@Example.com" and sent["iss"] == oidc_org.issuer and sent["sub"]
    assert report["person"] == {"email": "Stranger@Example.com", "subject": sent["sub"], "member": None}
    assert recorded(engine, oidc_org.scim.id) == before  # not even the login.refused event a real one writes
    replay = httpx.get(str(finished.request.url), headers={"Cookie": finished.request.headers["cookie"]}, timeout=10)
    assert replay.status_code == 400 and "already used" in replay.text  # the state was consumed


def test_oidc_just_in_time_would_be_accepted_and_nothing_is_recorded(settings, engine, oidc_org: OidcOrg):
    orgs.update_settings(engine, oidc_org.slug, sso_provisioning=True, seat_limit=5, seat_policy="refuse")
    before = recorded(engine, oidc_org.scim.id)
    report = report_of(engine, oidc_org.scim.id, oidc_test(settings, engine, oidc_org.slug, "new@example.com"))
    assert report["accepted"] is True and "just in time" in report["reason"]
    assert recorded(engine, oidc_org.scim.id) == before  # no member, no seat claim, no binding, no event


def test_oidc_provisioned_member_and_a_full_org(settings, engine, oidc_org: OidcOrg):
    member_id = member_row(engine, oidc_org.scim.id, "member@example.com")
    before = recorded(engine, oidc_org.scim.id)
    report = report_of(engine, oidc_org.scim.id, oidc_test(settings, engine, oidc_org.slug, "MEMBER@example.com"))
    assert report["accepted"] is True and "first login" in report["reason"]
    assert report["person"]["member"] == {"id": member_id, "email": "member@example.com", "status": "provisioned"}

    orgs.update_settings(engine, oidc_org.slug, seat_limit=0, seat_policy="refuse")
    report = report_of(engine, oidc_org.scim.id, oidc_test(settings, engine, oidc_org.slug, "member@example.com"))
    assert report["accepted"] is False and report["reason"] == SEAT_LIMIT_REACHED.format(limit=0)
    assert recorded(engine, oidc_org.scim.id) == before
    with engine.connect() as conn:
        status, first = conn.execute(select(members.c.status, members.c.first_login_at).where(members.c.id == member_id)).one()
    assert (status, first) == ("provisioned", None)


def test_oidc_a_user_pushed_but_not_applied_yet(settings, engine, oidc_org: OidcOrg):
    created = oidc_org.scim.client.post(
        "/Users", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "pushed@example.com"}
    )
    assert created.status_code == 201, created.text
    report = report_of(engine, oidc_org.scim.id, oidc_test(settings, engine, oidc_org.slug, "pushed@example.com"))
    assert report["accepted"] is True and "being added" in report["reason"] and report["person"]["member"] is None


def test_oidc_unverified_email_is_refused_by_our_checks_with_the_claims_shown(settings, engine, oidc_org: OidcOrg):
    orgs.update_settings(engine, oidc_org.slug, sso_provisioning=True)
    before = recorded(engine, oidc_org.scim.id)
    finished = oidc_test(settings, engine, oidc_org.slug, "unverified@example.com", email_verified="false")
    report = report_of(engine, oidc_org.scim.id, finished)
    assert report["accepted"] is False and report["stage"] == "identity provider"
    assert "not verified" in report["reason"]
    assert dict(report["sent"])["email_verified"] == "false" and report["person"] is None
    assert recorded(engine, oidc_org.scim.id) == before


def test_oidc_wrong_client_secret_is_reported_without_claims(settings, engine, oidc_org: OidcOrg):
    oidc.configure(engine, settings, oidc_org.slug, issuer=oidc_org.issuer, client_id=oidc_org.client_id, client_secret="no")
    report = report_of(engine, oidc_org.scim.id, oidc_test(settings, engine, oidc_org.slug, "a@example.com"))
    assert report["accepted"] is False and "invalid_client" in report["reason"] and report["sent"] == []


def test_a_report_is_its_orgs_only(settings, engine, oidc_org: OidcOrg, other_org: ScimOrg):
    finished = oidc_test(settings, engine, oidc_org.slug, "someone@example.com")
    test_id = RESULT.search(finished.text).group(1)
    with engine.connect() as conn:
        assert trial.load(conn, oidc_org.scim.id, test_id) is not None
        assert trial.load(conn, other_org.id, test_id) is None


def test_a_real_sign_in_is_not_a_test(settings, engine, oidc_org: OidcOrg):
    """Only a state the console marked is reported: the same flow from /login is recorded as ever."""
    started = httpx.get(f"{settings.public_url}/sso/{oidc_org.slug}/oidc/login", timeout=10)
    with engine.connect() as conn:
        states = conn.execute(text("SELECT data FROM sso_states WHERE org_id = :o"), {"o": oidc_org.scim.id}).scalars().all()
    assert started.status_code == 302 and states and all(trial.tester(data) is None for data in states)


# --- SAML 2.0 -------------------------------------------------------------------------------------


@pytest.fixture
def saml_org(settings, engine, server, scim_org, idp):
    scim_org.saml = connect(settings, engine, server, scim_org.slug, idp)
    return scim_org


def saml_test(settings: Settings, engine: Engine, org) -> tuple[str, dict[str, str]]:
    """Start a test from the console's side and sign in at the IdP: its form back to our ACS."""
    started = saml.start_test(settings, engine, org.slug, ACTOR)
    assert started.status_code == 302
    login_form = httpx.get(started.headers["location"], timeout=10)
    key = re.search(r'name="key" value="([^"]+)"', login_form.text).group(1)
    action = re.search(r'action="([^"]+)"', login_form.text).group(1)
    return form_of(httpx.post(action, data={"key": key, "user": "saml.person@example.com"}, timeout=10))


def test_saml_stranger_would_be_refused_then_accepted_just_in_time(settings, engine, saml_org):
    before = recorded(engine, saml_org.id)
    action, fields = saml_test(settings, engine, saml_org)
    finished = httpx.post(action, data=fields, timeout=10)
    report = report_of(engine, saml_org.id, finished)
    assert report["accepted"] is False and report["reason"] == SIGN_IN_REFUSED and report["verified"] is True
    sent = dict(report["sent"])
    assert sent["NameID"] == "saml.person@example.com" and sent["Issuer"] == report["idp"]
    assert report["protocol"] == "saml" and report["person"]["email"] == "saml.person@example.com"
    assert recorded(engine, saml_org.id) == before
    replayed = httpx.post(action, data=fields, timeout=10)
    assert replayed.status_code == 401 and "InResponseTo" in replayed.text  # the test's request is spent

    orgs.update_settings(engine, saml_org.slug, sso_provisioning=True)
    action, fields = saml_test(settings, engine, saml_org)
    report = report_of(engine, saml_org.id, httpx.post(action, data=fields, timeout=10))
    assert report["accepted"] is True and "just in time" in report["reason"]
    assert recorded(engine, saml_org.id) == before


def test_saml_tampered_response_is_reported_as_refused_by_our_checks(settings, engine, saml_org):
    orgs.update_settings(engine, saml_org.slug, sso_provisioning=True)
    before = recorded(engine, saml_org.id)
    action, fields = saml_test(settings, engine, saml_org)
    doc = etree.fromstring(base64.b64decode(fields["SAMLResponse"]))
    name_id = doc.find(".//{urn:oasis:names:tc:SAML:2.0:assertion}NameID")
    name_id.text = "ceo@example.com"
    tampered = {**fields, "SAMLResponse": base64.b64encode(etree.tostring(doc)).decode()}
    report = report_of(engine, saml_org.id, httpx.post(action, data=tampered, timeout=10))
    assert report["accepted"] is False and report["stage"] == "identity provider" and report["verified"] is False
    assert dict(report["sent"])["NameID"] == "ceo@example.com"  # shown as received, marked not verified
    assert recorded(engine, saml_org.id) == before
    # the genuine response cannot be used after its test was reported
    assert httpx.post(action, data=fields, timeout=10).status_code == 401
    assert recorded(engine, saml_org.id) == before
