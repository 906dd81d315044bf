"""The app's own sign-in as the login API records it: in autocommit when the org has no seat limit
(the org and member read at once, then the event), in a transaction when it has one; and the
outbox keeps the types a connection staged only for whoever asked."""

import uuid

import orjson
import pytest
from sqlalchemy import text

from domain import orgs
from domain.model import Member, MemberStatus, Source
from domain.postgres import NeedsTransaction, SqlUnitOfWork
from events import outbox
from ingest.logins import LoginError, SignIn, record_app_sign_in

pytestmark = pytest.mark.integration


def _members(engine, org_id: str, statuses: list[MemberStatus], email: str) -> list[str]:
    """Members of the org with this email, created one transaction after another (oldest first)."""
    ids = []
    for status in statuses:
        member = Member(id=str(uuid.uuid4()), org_id=org_id, scim_user_id=None, user_name=email, email=email,
                        email_ci=email.lower(), display_name=None, status=status, source=Source.MANUAL)  # fmt: skip
        with SqlUnitOfWork.begin(engine, {}) as uow:
            uow.members.add([member])
        ids.append(member.id)
    return ids


def _staged(engine, org_id: str) -> list[dict]:
    with engine.connect() as conn:
        return [
            p if isinstance(p, dict) else orjson.loads(p)
            for p in conn.execute(text("SELECT payload FROM outbox WHERE payload->>'orgid' = :o"), {"o": org_id}).scalars()
        ]


def test_an_app_sign_in_is_recorded_in_autocommit_with_the_oldest_live_member(engine, settings):
    org, _ = orgs.create(engine, "lp-" + uuid.uuid4().hex[:8])
    removed, oldest, _newer = _members(
        engine, org.id, [MemberStatus.REMOVED, MemberStatus.PROVISIONED, MemberStatus.ACTIVE], "Ann@Example.test"
    )
    with SqlUnitOfWork.autocommit(engine, settings.topics()) as uow:
        outcome = record_app_sign_in(uow, org.slug, SignIn(email=" ann@example.TEST ", method="password", sso=False))
        assert outcome.accepted and outcome.reason is None
        with pytest.raises(LoginError):
            record_app_sign_in(uow, org.slug, SignIn(email="not an email", method="password", sso=False))
        with pytest.raises(orgs.OrgError):
            record_app_sign_in(uow, "no-such-org-" + uuid.uuid4().hex[:6], SignIn(email="a@b.test", method="password", sso=False))
    (staged,) = _staged(engine, org.id)  # committed without a COMMIT of ours: autocommit
    assert staged["id"] == outcome.event_id and staged["type"] == "io.provisioner.login.succeeded"
    assert staged["data"]["member_id"] == oldest != removed
    assert staged["data"]["email"] == "ann@example.TEST" and staged["data"]["jit"] is False


def test_a_sign_in_into_an_org_with_a_seat_limit_needs_a_transaction(engine, settings):
    org, _ = orgs.create(engine, "lp-" + uuid.uuid4().hex[:8])
    with engine.begin() as conn:
        conn.execute(text("UPDATE orgs SET seat_limit = 1 WHERE id = :o"), {"o": org.id})
    _members(engine, org.id, [MemberStatus.PROVISIONED], "b@example.test")
    _members(engine, org.id, [MemberStatus.PROVISIONED], "c@example.test")
    sign_in = SignIn(email="b@example.test", method="password", sso=False)
    with SqlUnitOfWork.autocommit(engine, settings.topics()) as uow, pytest.raises(NeedsTransaction):
        record_app_sign_in(uow, org.slug, sign_in)
    assert _staged(engine, org.id) == []  # nothing was written before it asked
    with SqlUnitOfWork.begin(engine, settings.topics()) as uow:
        first = record_app_sign_in(uow, org.slug, sign_in)
    with SqlUnitOfWork.begin(engine, settings.topics()) as uow:  # the seat claimed by the first counts
        second = record_app_sign_in(uow, org.slug, SignIn(email="c@example.test", method="password", sso=False))
    assert first.accepted and not second.accepted and "seat limit" in str(second.reason)
    with engine.connect() as conn:
        claims = conn.execute(text("SELECT count(*) FROM seat_claims WHERE org_id = :o"), {"o": org.id}).scalar()
    assert claims == 1
    types = sorted(s["type"] for s in _staged(engine, org.id))
    assert types == ["io.provisioner.login.refused", "io.provisioner.login.succeeded"]


def test_staged_types_are_kept_only_while_tracked(engine, settings):
    org, _ = orgs.create(engine, "lp-" + uuid.uuid4().hex[:8])
    with engine.connect() as conn:
        uow = SqlUnitOfWork(conn.execution_options(isolation_level="AUTOCOMMIT"), settings.topics(), in_transaction=False)
        record_app_sign_in(uow, org.slug, SignIn(email="d@example.test", method="password", sso=False))
        assert outbox.staged_types(conn) == []  # untracked: nothing kept on the pooled connection
        outbox.track_staged(conn)
        record_app_sign_in(uow, org.slug, SignIn(email="d@example.test", method="password", sso=False))
        assert outbox.staged_types(conn) == ["io.provisioner.login.succeeded"]
        record_app_sign_in(uow, org.slug, SignIn(email="d@example.test", method="password", sso=False))
        assert outbox.staged_types(conn) == []
