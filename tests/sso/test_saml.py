"""SAML 2.0 sign-in against a real IdP (pysaml2's, tests/idp/saml/idp.py) on loopback.

The IdP runs as a child process with keys made here; the ingest server is the real uvicorn
process. Forged responses are made from genuine signed ones and must be refused with no event.
"""

import base64
import json
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from lxml import etree
from sqlalchemy import text

from core.settings import to_env
from domain import orgs
from tests.conftest import make_org
from tests.sso.conftest_saml import _start_idp, connect, form_of

pytestmark = pytest.mark.sso

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
DS = "http://www.w3.org/2000/09/xmldsig#"
LOGIN = "io.provisioner.login."


@pytest.fixture(scope="session")
def idp_sha1(tmp_path_factory):
    proc, url, log = _start_idp(tmp_path_factory.mktemp("saml-idp-sha1"), "--sha1")
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


@pytest.fixture
def saml_org(settings, engine, server, scim_org, idp):
    scim_org.saml = connect(settings, engine, server, scim_org.slug, idp)
    return scim_org


def idp_initiated(idp_url: str, sp: str, user: str, **params) -> tuple[str, dict[str, str]]:
    return form_of(httpx.get(f"{idp_url}/idp-init", params={"sp": sp, "user": user, **params}, timeout=10))


def sp_initiated(org, user: str, **params) -> tuple[str, dict[str, str]]:
    """Our /login -> the IdP's login form -> the user signs in -> the form back to our ACS."""
    start = httpx.get(org.saml["login_url"], params=params, timeout=10)
    assert start.status_code == 302, start.text
    login_form = httpx.get(start.headers["location"], timeout=10)
    assert login_form.status_code == 200, login_form.text
    key = re.search(r'name="key" value="([^"]+)"', login_form.text).group(1)
    action = re.search(r'action="([^"]+)"', login_form.text).group(1)
    return form_of(httpx.post(action, data={"key": key, "user": user}, timeout=10))


def post(action: str, fields: dict[str, str]) -> httpx.Response:
    return httpx.post(action, data=fields, timeout=10, follow_redirects=False)


def login_events(engine, org_id: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT payload FROM outbox WHERE payload->>'orgid' = :o AND payload->>'type' LIKE :t ORDER BY id"),
            {"o": org_id, "t": LOGIN + "%"},
        )
        return [row[0] for row in rows]


def xml_of(fields: dict[str, str]) -> etree._Element:
    return etree.fromstring(base64.b64decode(fields["SAMLResponse"]))


def with_xml(fields: dict[str, str], doc: etree._Element) -> dict[str, str]:
    return {**fields, "SAMLResponse": base64.b64encode(etree.tostring(doc)).decode()}


# --- accepted -----------------------------------------------------------------------------


def test_sp_initiated_with_sso_provisioning_on_accepts_a_new_person(saml_org, engine, settings):
    orgs.update_settings(engine, saml_org.slug, sso_provisioning=True)
    action, fields = sp_initiated(saml_org, "new.person@example.com")
    assert action == saml_org.saml["acs_url"]
    reply = post(action, fields)
    assert reply.status_code == 303, reply.text
    assert reply.headers["location"] == settings.app_url.format(org=saml_org.slug)
    [event] = login_events(engine, saml_org.id)
    assert event["type"] == LOGIN + "succeeded"
    assert event["data"]["jit"] is True and event["data"]["method"] == "saml" and event["data"]["sso"] is True
    assert event["data"]["email"] == "new.person@example.com"
    assert event["data"]["idp"].endswith("/metadata")
    assert event["data"]["subject"] is None  # an emailAddress NameID is no stable id


def test_sp_initiated_relay_state_path_is_followed(saml_org, engine, settings):
    orgs.update_settings(engine, saml_org.slug, sso_provisioning=True)
    reply = post(*sp_initiated(saml_org, "deep.link@example.com", next="/app/reports?x=1"))
    assert reply.status_code == 303, reply.text
    origin = re.match(r"https?://[^/]+", settings.app_url).group(0)
    assert reply.headers["location"] == f"{origin}/app/reports?x=1"


def test_idp_initiated_with_sso_provisioning_off_refuses_a_stranger_with_an_event(saml_org, engine, idp):
    reply = post(*idp_initiated(idp, saml_org.saml["entity_id"], "stranger@example.com"))
    assert reply.status_code == 403, reply.text
    assert "SSO provisioning is off" in reply.text
    [event] = login_events(engine, saml_org.id)
    assert event["type"] == LOGIN + "refused" and event["data"]["email"] == "stranger@example.com"


def test_scim_provisioned_user_is_accepted_with_sso_provisioning_off(saml_org, engine, idp, settings):
    created = saml_org.client.post(
        "/Users", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "known@example.com"}
    )
    assert created.status_code == 201, created.text
    reply = post(*idp_initiated(idp, saml_org.saml["entity_id"], "known@example.com"))
    assert reply.status_code == 303, reply.text
    assert reply.headers["location"] == settings.app_url.format(org=saml_org.slug)
    [event] = login_events(engine, saml_org.id)
    assert event["type"] == LOGIN + "succeeded" and event["data"]["jit"] is False


# --- refused, with no event ---------------------------------------------------------------


def refused(reply: httpx.Response, engine, org, why: str) -> None:
    assert reply.status_code in (400, 401), reply.text
    assert re.search(why, reply.text, re.I), reply.text
    assert login_events(engine, org.id) == []


@pytest.fixture
def open_org(saml_org, engine):
    """SSO provisioning on: anything that gets through would be accepted."""
    orgs.update_settings(engine, saml_org.slug, sso_provisioning=True)
    return saml_org


def test_tampered_assertion_bad_signature(open_org, engine, idp):
    action, fields = idp_initiated(idp, open_org.saml["entity_id"], "alice@example.com")
    forged = base64.b64decode(fields["SAMLResponse"]).replace(b"alice@example.com", b"mallory@example.com")
    reply = post(action, {**fields, "SAMLResponse": base64.b64encode(forged).decode()})
    refused(reply, engine, open_org, "signature")


def test_replayed_response(open_org, engine, idp):
    action, fields = idp_initiated(idp, open_org.saml["entity_id"], "alice@example.com")
    assert post(action, fields).status_code == 303
    reply = post(action, fields)
    assert reply.status_code == 401 and "already used" in reply.text, reply.text
    assert [e["type"] for e in login_events(engine, open_org.id)] == [LOGIN + "succeeded"]


@pytest.mark.parametrize("variant", ["evil-sibling-first", "signed-moved-to-extensions"])
def test_signature_wrapping(open_org, engine, idp, variant):
    action, fields = idp_initiated(idp, open_org.saml["entity_id"], "alice@example.com")
    doc = xml_of(fields)
    signed = doc.find(f"{{{SAML}}}Assertion")
    evil = etree.fromstring(etree.tostring(signed))
    evil.remove(evil.find(f"{{{DS}}}Signature"))
    evil.set("ID", "_evil" + uuid.uuid4().hex)
    for node in evil.iter(f"{{{SAML}}}NameID", f"{{{SAML}}}AttributeValue"):
        node.text = "mallory@example.com"
    if variant == "evil-sibling-first":
        signed.addprevious(evil)
    else:
        extensions = etree.Element(f"{{{SAMLP}}}Extensions")
        doc.replace(signed, evil)
        extensions.append(signed)
        doc.find(f"{{{SAML}}}Issuer").addnext(extensions)
    refused(post(action, with_xml(fields, doc)), engine, open_org, "assertion|signature")


def test_sha1_signed_response(settings, engine, server, idp_sha1):
    org = make_org(settings, engine)
    org.saml = connect(settings, engine, server, org.slug, idp_sha1)
    orgs.update_settings(engine, org.slug, sso_provisioning=True)
    action, fields = idp_initiated(idp_sha1, org.saml["entity_id"], "alice@example.com")
    assert b"rsa-sha1" in base64.b64decode(fields["SAMLResponse"])
    refused(post(action, fields), engine, org, "deprecated signature algorithm|sha-?1|algorithm")
    org.client.close()


def test_wrong_audience(open_org, engine, idp):
    """The IdP is configured with another SP entity id that (mis)uses our ACS URL."""
    ours = httpx.get(open_org.saml["metadata_url"], timeout=10).text
    other = "https://other-sp.example/" + uuid.uuid4().hex
    assert httpx.post(f"{idp}/sp", content=ours.replace(open_org.saml["entity_id"], other), timeout=10).status_code == 204
    action, fields = idp_initiated(idp, other, "alice@example.com")
    assert action == open_org.saml["acs_url"]
    refused(post(action, fields), engine, open_org, "audience")


def test_response_for_another_orgs_acs(open_org, engine, settings, server, idp):
    other = make_org(settings, engine)
    other.saml = connect(settings, engine, server, other.slug, idp)
    orgs.update_settings(engine, other.slug, sso_provisioning=True)
    _, fields = idp_initiated(idp, other.saml["entity_id"], "alice@example.com")
    refused(post(open_org.saml["acs_url"], fields), engine, open_org, "received at|addressed to|audience|recipient")
    assert login_events(engine, other.id) == []
    other.client.close()


def test_expired_assertion(open_org, engine, idp):
    action, fields = idp_initiated(idp, open_org.saml["entity_id"], "alice@example.com", lifetime=-900)
    refused(post(action, fields), engine, open_org, "expired|SubjectConfirmation")


@pytest.mark.parametrize("how", ["unknown", "expired"])
def test_in_response_to_of_an_unknown_request(open_org, engine, how):
    action, fields = sp_initiated(open_org, "alice@example.com")
    request_id = xml_of(fields).get("InResponseTo")
    assert request_id
    with engine.begin() as conn:
        if how == "unknown":
            conn.execute(text("DELETE FROM sso_states WHERE state = :s"), {"s": request_id})
        else:
            conn.execute(text("UPDATE sso_states SET expires_at = now() - interval '1 s' WHERE state = :s"), {"s": request_id})
    refused(post(action, fields), engine, open_org, "InResponseTo")


def test_sp_initiated_request_is_single_use(open_org, engine):
    action, fields = sp_initiated(open_org, "alice@example.com")
    assert post(action, fields).status_code == 303
    with engine.connect() as conn:
        left = conn.execute(text("SELECT count(*) FROM sso_states WHERE state = :s"), {"s": xml_of(fields).get("InResponseTo")})
        assert left.scalar() == 0


# --- bad input, unknown orgs, the CLI -------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [{}, {"SAMLResponse": "%%% not base64"}, {"SAMLResponse": base64.b64encode(b"<not-xml").decode()},
     {"SAMLResponse": base64.b64encode(b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>").decode()}],
)
def test_malformed_input_is_a_400_not_a_500(open_org, engine, body):
    reply = httpx.post(open_org.saml["acs_url"], data=body, timeout=10)
    assert reply.status_code in (400, 401), reply.text
    assert login_events(engine, open_org.id) == []


def test_unknown_or_unconfigured_org_is_404(scim_org, settings):
    base = settings.public_url
    assert httpx.get(f"{base}/sso/no-such-org/saml/login", timeout=10).status_code == 404
    assert httpx.get(f"{base}/sso/{scim_org.slug}/saml/login", timeout=10).status_code == 404
    assert httpx.post(f"{base}/sso/{scim_org.slug}/saml/acs", data={"SAMLResponse": "x"}, timeout=10).status_code == 404


def test_configure_via_cli(scim_org, settings, idp, tmp_path):
    metadata = tmp_path / "idp.xml"
    metadata.write_text(httpx.get(f"{idp}/metadata", timeout=10).text)
    out = subprocess.run(
        [sys.executable, "-m", "cli", "sso", "configure", scim_org.slug, "--saml-metadata", str(metadata), "--json"],
        env={**os.environ, **to_env(settings)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    saml = json.loads(out.stdout)["saml"]
    assert saml["acs_url"] == f"{settings.public_url}/sso/{scim_org.slug}/saml/acs"
    assert saml["entity_id"] == f"{settings.public_url}/sso/{scim_org.slug}/saml/metadata"
    bad = tmp_path / "bad.xml"
    bad.write_text("<EntityDescriptor/>")
    out = subprocess.run(
        [sys.executable, "-m", "cli", "sso", "configure", scim_org.slug, "--saml-metadata", str(bad)],
        env={**os.environ, **to_env(settings)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "error:" in out.stderr


# --- our rules on top of the toolkit's (checked on genuine responses, altered) --------------


@pytest.mark.parametrize(
    "alter, why",
    [
        ("recipient-prefix", "Recipient"),
        ("no-audience", "audience"),
        ("sha1-digest", "refused"),
        ("no-not-on-or-after", "NotOnOrAfter"),
        ("expired-90s", "expired"),
    ],
)
def test_stricter_rules_than_the_toolkit(open_org, settings, idp, alter, why):
    from ingest.sso import saml

    _, fields = idp_initiated(idp, open_org.saml["entity_id"], "alice@example.com")
    resp = saml.OneLogin_Saml2_Response(saml._toolkit_settings(settings, open_org.slug, None), fields["SAMLResponse"])
    acs, entity = open_org.saml["acs_url"], open_org.saml["entity_id"]
    assert saml._check(resp, acs, entity) > datetime.now(UTC)
    doc = resp.document
    scd = doc.find(f".//{{{SAML}}}SubjectConfirmationData")
    conditions = doc.find(f".//{{{SAML}}}Conditions")
    if alter == "recipient-prefix":
        scd.set("Recipient", acs + "-other")
    elif alter == "no-audience":
        conditions.remove(conditions.find(f"{{{SAML}}}AudienceRestriction"))
    elif alter == "sha1-digest":
        doc.find(f".//{{{DS}}}DigestMethod").set("Algorithm", "http://www.w3.org/2000/09/xmldsig#sha1")
    elif alter == "no-not-on-or-after":
        del scd.attrib["NotOnOrAfter"], conditions.attrib["NotOnOrAfter"]
    else:
        past = (datetime.now(UTC) - timedelta(seconds=90)).strftime("%Y-%m-%dT%H:%M:%SZ")
        scd.set("NotOnOrAfter", past)
        conditions.set("NotOnOrAfter", past)
    with pytest.raises(saml.Rejected, match=why):
        saml._check(resp, acs, entity)
