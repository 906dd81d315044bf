"""Deprovisioning that revokes: a SCIM deactivation or deletion reaches a receiver on loopback as a
CAEP session-revoked Security Event Token (RFC 8417), pushed (RFC 8935) and signed with the key
ingest publishes; the receiver verifies it as a relying app would, from the JWKS URL alone.
Retries, the dead-letter state and `provisioner signals redrive` are checked against the same
receiver answering as scripted."""

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
from sqlalchemy import text

from events.security_event_token import SESSION_REVOKED
from tests.conftest import wait_for

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

pytestmark = pytest.mark.e2e


@dataclass
class Receiver:
    """An RFC 8935 push endpoint: verifies each SET's signature against the transmitter's JWKS,
    its issuer, audience and `typ`, and answers 202, or what `script` says for that member."""

    issuer: str
    audience: str
    jwks: jwt.PyJWKClient
    accepted: list[dict] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)  # member ids of every push, in order, whatever the answer
    script: dict[str, list[tuple[int, dict]]] = field(default_factory=dict)  # member id -> answers still to give
    lock: threading.Lock = field(default_factory=threading.Lock)

    def receive(self, content_type: str, body: bytes) -> tuple[int, dict]:
        if content_type != "application/secevent+jwt":
            return 400, {"err": "invalid_request", "description": f"content type {content_type}"}
        token = body.decode()
        try:
            header = jwt.get_unverified_header(token)
            key = self.jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(token, key.key, algorithms=["ES256"], audience=self.audience, issuer=self.issuer,
                                options={"require": ["iss", "iat", "jti", "aud", "events"]})
        except jwt.PyJWTError as exc:
            with self.lock:
                self.refused.append(str(exc))
            return 400, {"err": "invalid_key", "description": str(exc)}
        if header.get("typ") != "secevent+jwt":
            return 400, {"err": "invalid_request", "description": "typ"}
        member = claims["sub_id"]["user"]["id"]
        with self.lock:
            self.seen.append(member)
            answers = self.script.get(member)
            if answers:
                return answers.pop(0)
            self.accepted.append({**claims, "_header": header, "_received": time.time()})
        return 202, {}

    def for_member(self, member_id: str) -> list[dict]:
        with self.lock:
            return [c for c in self.accepted if c["sub_id"]["user"]["id"] == member_id]


@pytest.fixture(scope="module")
def receiver(pipeline, settings, server):
    url = urlsplit(settings.caep_push_url)
    state = Receiver(settings.public_url.rstrip("/"), settings.caep_push_url,
                     jwt.PyJWKClient(f"{server}/.well-known/jwks.json"))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status, answer = (state.receive(self.headers.get("Content-Type", ""), body) if self.path == url.path
                              else (404, {}))
            payload = json.dumps(answer).encode() if answer else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer((url.hostname, url.port), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()


def provision(scim_org, engine, email):
    r = scim_org.client.post("/Users", json={"schemas": [USER], "userName": email, "emails": [{"value": email, "primary": True}]})
    assert r.status_code == 201, r.text
    user_id = r.json()["id"]

    def member_id():
        with engine.connect() as conn:
            return conn.execute(text("SELECT id::text FROM members WHERE org_id = :o AND scim_user_id = :u"),
                                {"o": scim_org.id, "u": user_id}).scalar()

    return user_id, wait_for(member_id, timeout=30, message="the member")


def deactivate(scim_org, user_id):
    r = scim_org.client.patch(f"/Users/{user_id}", json={"schemas": [PATCH], "Operations": [
        {"op": "replace", "value": {"active": False}}]})
    assert r.status_code in (200, 204), r.text


def signal_row(engine, member_id):
    with engine.connect() as conn:
        return conn.execute(text("SELECT status, attempts, last_error, reason FROM security_events WHERE member_id = :m"),
                            {"m": member_id}).mappings().first()


def test_the_jwks_and_transmitter_metadata_are_published(server, settings):
    config = httpx.get(f"{server}/.well-known/ssf-configuration").json()
    assert config["issuer"] == settings.public_url.rstrip("/")
    assert config["jwks_uri"] == f"{server}/.well-known/jwks.json"
    assert config["delivery_methods_supported"] == ["urn:ietf:rfc:8935"]
    keys = httpx.get(config["jwks_uri"]).json()["keys"]
    assert [(k["kty"], k["crv"], k["alg"], k["use"]) for k in keys] == [("EC", "P-256", "ES256", "sig")]


def test_a_scim_deactivation_reaches_the_receiver_as_a_verified_session_revoked_set(receiver, scim_org, engine):
    user_id, member_id = provision(scim_org, engine, "leaver@acme.test")
    before = datetime.now(UTC).timestamp()
    deactivate(scim_org, user_id)
    after = datetime.now(UTC).timestamp()
    (claims,) = wait_for(lambda: receiver.for_member(member_id), timeout=30, message="the SET")
    assert claims["sub_id"] == {"format": "complex", "user": {"format": "opaque", "id": member_id},
                                "tenant": {"format": "opaque", "id": scim_org.id}}
    event = claims["events"][SESSION_REVOKED]
    assert int(before) <= event["event_timestamp"] <= after + 1  # when the SCIM write committed, not when it was pushed
    assert event["initiating_entity"] == "admin" and "deactivated" in event["reason_admin"]["en"]
    assert claims["_header"]["kid"] and claims["_header"]["alg"] == "ES256"
    wait_for(lambda: signal_row(engine, member_id)["status"] == "delivered", message="delivered")  # recorded after the answer
    time.sleep(1.0)  # no second push of a delivered SET
    assert len(receiver.for_member(member_id)) == 1


def test_a_scim_deletion_revokes_too(receiver, scim_org, engine):
    user_id, member_id = provision(scim_org, engine, "deleted@acme.test")
    assert scim_org.client.delete(f"/Users/{user_id}").status_code == 204
    (claims,) = wait_for(lambda: receiver.for_member(member_id), timeout=30, message="the SET")
    assert "removed" in claims["events"][SESSION_REVOKED]["reason_admin"]["en"]
    assert signal_row(engine, member_id)["reason"] == "removed"


def test_a_receiver_that_fails_for_a_while_gets_the_set_once_it_recovers(receiver, scim_org, engine):
    user_id, member_id = provision(scim_org, engine, "flaky@acme.test")
    receiver.script[member_id] = [(503, {}), (503, {})]
    deactivate(scim_org, user_id)
    (claims,) = wait_for(lambda: receiver.for_member(member_id), timeout=30, message="the SET after two 503s")
    row = wait_for(lambda: (r := signal_row(engine, member_id))["status"] == "delivered" and r, message="delivered")
    assert row["attempts"] == 3
    assert receiver.seen.count(member_id) == 3
    assert claims["jti"]  # the same SET each time: one id to dedupe on
    assert not receiver.refused


def test_a_refused_set_is_dead_lettered_and_a_redrive_delivers_it(receiver, scim_org, engine, settings):
    user_id, member_id = provision(scim_org, engine, "refused@acme.test")
    receiver.script[member_id] = [(400, {"err": "invalid_audience", "description": "not ours"})]
    deactivate(scim_org, user_id)
    row = wait_for(lambda: (r := signal_row(engine, member_id)) and r["status"] == "dead" and r, timeout=30,
                   message="the dead signal")
    assert row["attempts"] == 1  # a 400 is not retried
    assert "invalid_audience" in row["last_error"]
    assert receiver.for_member(member_id) == []
    from core.settings import to_env

    out = subprocess.run([sys.executable, "-m", "cli", "signals", "list", "--status", "dead", "--json"],
                         env={**os.environ, **to_env(settings)}, capture_output=True, text=True, check=True).stdout
    assert member_id in out
    done = subprocess.run([sys.executable, "-m", "cli", "signals", "redrive"], env={**os.environ, **to_env(settings)},
                          capture_output=True, text=True, check=True).stdout
    assert json.loads(done)["redriven"] >= 1
    wait_for(lambda: receiver.for_member(member_id), timeout=30, message="the redriven SET")
    wait_for(lambda: signal_row(engine, member_id)["status"] == "delivered", message="delivered")


def test_a_receiver_that_never_answers_well_ends_in_dead_after_the_last_attempt(receiver, scim_org, engine, settings):
    user_id, member_id = provision(scim_org, engine, "down@acme.test")
    receiver.script[member_id] = [(500, {})] * settings.caep_push_max_attempts
    deactivate(scim_org, user_id)
    row = wait_for(lambda: (r := signal_row(engine, member_id)) and r["status"] == "dead" and r, timeout=60,
                   message="the signal given up")
    assert row["attempts"] == settings.caep_push_max_attempts
    assert "gave up" in row["last_error"]
    assert receiver.seen.count(member_id) == settings.caep_push_max_attempts
