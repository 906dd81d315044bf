"""The signals worker's rules, the SET it signs, and what each receiver answer means for delivery."""

from datetime import UTC, datetime

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from core.settings import Settings
from events import catalogue as c
from events import security_event_token as tokens
from events.envelope import decode, encode
from ingest.scim.changes import OrgRef, user_events
from tests.fakes import FakeUnitOfWork
from workers.membership import member_event
from workers.signals import Signals
from workers.signals.delivery import classify

pytestmark = pytest.mark.unit

ORG = OrgRef("00000000-0000-0000-0000-000000000001", "acme")
SETTINGS = Settings(caep_push_max_attempts=5, caep_push_retry_base_seconds=1.0, caep_push_retry_max_seconds=60.0)


class _Member:
    def __init__(self):
        self.id, self.email, self.source, self.status, self.first_login_at, self.version = (
            "00000000-0000-0000-0000-0000000000aa", "a@acme.test", "scim", "deactivated", None, 1)


def _member_fact(kind: c.EventType):
    (scim_write,) = user_events(ORG, "u1", None, {"userName": "a@acme.test"}, 2)
    return scim_write, member_event(kind, scim_write, _Member())


def test_a_member_event_carries_its_first_causes_time_two_hops_on_and_through_the_envelope():
    scim_write, fact = _member_fact(c.MEMBER_DEACTIVATED)
    assert scim_write.cause_time is None and fact.cause_time == scim_write.time
    later = member_event(c.MEMBER_REMOVED, fact, _Member())
    assert later.cause_time == scim_write.time
    assert decode(encode(fact)) == fact
    assert "causetime" not in scim_write.to_cloudevent()


@pytest.mark.parametrize("kind, reason", [(c.MEMBER_DEACTIVATED, "deactivated"), (c.MEMBER_REMOVED, "removed")])
def test_deactivations_and_removals_stage_one_signal_each_with_the_scim_writes_time(kind, reason):
    scim_write, fact = _member_fact(kind)
    uow = FakeUnitOfWork()
    assert Signals(enabled=True).apply([fact, fact], uow) == ["applied", "applied"]
    (row,) = uow.tables["security_events"]  # the same cause twice: one signal
    assert row["reason"] == reason and row["occurred_at"] == scim_write.time
    assert row["jti"] == tokens.jti_for(fact.id) and row["member_id"] == _Member().id


@pytest.mark.parametrize("kind", [c.MEMBER_CREATED, c.MEMBER_REACTIVATED, c.MEMBER_LOGGED_IN_FIRST_TIME])
def test_other_member_events_and_a_deployment_without_a_receiver_stage_nothing(kind):
    _, fact = _member_fact(kind)
    _, deactivated = _member_fact(c.MEMBER_DEACTIVATED)
    uow = FakeUnitOfWork()
    assert Signals(enabled=True).apply([fact], uow) == ["ignored"]
    assert Signals(enabled=False).apply([deactivated], uow) == ["ignored"]
    assert uow.tables.get("security_events", []) == []


def _token(signer, **overrides):
    values = dict(jti="j1", audience="https://rp.test/caep", org_id="o1", member_id="m1", reason="deactivated",
                  occurred_at=datetime(2026, 12, 2, 3, 0, tzinfo=UTC), issued_at=datetime.now(UTC), txn="req-1")
    return signer.session_revoked(**(values | overrides))


def test_the_set_verifies_with_the_published_key_and_has_the_caep_shape():
    signer = tokens.signer("", "a secret", "https://provisioner.test/")
    token = _token(signer)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "ES256", "kid": signer.kid, "typ": "secevent+jwt"}
    (jwk,) = signer.jwks()["keys"]
    key = jwt.PyJWK(jwk).key
    claims = jwt.decode(token, key, algorithms=["ES256"], audience="https://rp.test/caep", issuer="https://provisioner.test")
    assert claims["sub_id"]["user"] == {"format": "opaque", "id": "m1"} and claims["txn"] == "req-1"
    assert claims["events"][tokens.SESSION_REVOKED]["event_timestamp"] == int(datetime(2026, 12, 2, 3, 0, tzinfo=UTC).timestamp())
    assert "exp" not in claims  # RFC 8417: a SET is a statement of fact, not a credential


def test_the_derived_key_is_the_same_in_every_process_and_differs_per_secret():
    a, b, other = (tokens.signer("", s, "https://p.test") for s in ("one", "one", "two"))
    assert a.kid == b.kid != other.kid
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(_token(other), jwt.PyJWK(a.jwks()["keys"][0]).key, algorithms=["ES256"], audience="https://rp.test/caep")


def test_a_configured_p256_key_is_used_and_any_other_key_is_refused():
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    signer = tokens.signer(pem.decode(), "ignored", "https://p.test")
    jwt.decode(_token(signer), key.public_key(), algorithms=["ES256"], audience="https://rp.test/caep")
    for wrong in (ec.generate_private_key(ec.SECP384R1()), rsa.generate_private_key(public_exponent=65537, key_size=2048)):
        other = wrong.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        with pytest.raises(ValueError, match="P-256"):
            tokens.signer(other.decode(), "x", "https://p.test")


@pytest.mark.parametrize("status", [200, 202, 204])
def test_any_2xx_is_delivered(status):
    assert classify(status, b"", None, 1, SETTINGS) == ("delivered", None, 0.0)


@pytest.mark.parametrize("status", [400, 404, 413, 415])
def test_a_refusal_is_dead_at_once_with_the_receivers_reason(status):
    outcome, error, _ = classify(status, b'{"err": "invalid_audience", "description": "not for us"}', None, 1, SETTINGS)
    assert outcome == "dead_lettered" and error == f"HTTP {status}: invalid_audience: not for us"


@pytest.mark.parametrize("status", [None, 401, 403, 408, 429, 500, 503])
def test_failures_that_may_pass_are_retried_with_a_doubling_back_off_then_dead(status):
    delays = [classify(status, b"boom", None, attempt, SETTINGS)[2] for attempt in range(1, 5)]
    for attempt, delay in enumerate(delays, start=1):
        assert 0.8 * 2 ** (attempt - 1) <= delay <= 1.2 * 2 ** (attempt - 1)
    assert classify(status, b"boom", None, 5, SETTINGS)[0] == "dead_lettered"
    assert classify(status, b"boom", None, 30, SETTINGS)[0] == "dead_lettered"


def test_retry_after_is_honoured_up_to_the_cap():
    assert classify(503, b"", "30", 1, SETTINGS)[2] == 30.0
    assert classify(429, b"", "86400", 1, SETTINGS)[2] == 60.0
    assert classify(503, b"", "Wed, 21 Oct 2015 07:28:00 GMT", 1, SETTINGS)[2] <= 1.2  # a date: the back-off alone


def test_the_back_off_never_exceeds_the_cap():
    many = Settings(caep_push_max_attempts=100, caep_push_retry_max_seconds=60.0)
    assert max(classify(500, b"", None, n, many)[2] for n in range(1, 99)) <= 60.0


def test_jti_is_stable_per_cause_and_unique_across_causes():
    assert tokens.jti_for("e1") == tokens.jti_for("e1") != tokens.jti_for("e2")


def test_the_set_claims_match_the_published_schema():
    import json
    from pathlib import Path

    from jsonschema import Draft202012Validator, FormatChecker

    schema = json.loads((Path(__file__).parents[2] / "schemas" / "signals" / "session-revoked.json").read_text())
    Draft202012Validator.check_schema(schema)
    signer = tokens.signer("", "a secret", "https://provisioner.test")
    member, org = "00000000-0000-0000-0000-0000000000aa", "00000000-0000-0000-0000-000000000001"
    for txn in (None, "req-1"):
        claims = jwt.decode(_token(signer, member_id=member, org_id=org, jti=tokens.jti_for("e1"), txn=txn),
                            options={"verify_signature": False})
        errors = list(Draft202012Validator(schema, format_checker=FormatChecker()).iter_errors(claims))
        assert not errors, errors
    claims["sub_id"]["user"]["email"] = "a@acme.test"  # the schema is strict: what the code sends, nothing else
    assert list(Draft202012Validator(schema, format_checker=FormatChecker()).iter_errors(claims))
