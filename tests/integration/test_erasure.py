"""Erasing a member on the real PostgreSQL: afterwards no column of any table (every text, JSONB, array
and byte column of `core.tables.metadata`, so tables added later are searched too) holds the person's
email, names or IdP identifiers; `member.erased` is in the outbox once; a member the org's SCIM client
still manages, or one whose events are still unpublished, is refused with nothing changed; erasing
again erases nothing and stages nothing; and the `provisioner members erase` command does the same."""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from sqlalchemy import JSON, Connection, Engine, LargeBinary, String, Text, cast, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from typer.testing import CliRunner

from cli.main import app
from core.settings import Settings, to_env
from core.tables import (
    accounts,
    conflicts,
    dead_letters,
    invitations,
    member_activity,
    member_identities,
    members,
    metadata,
    outbox,
    pending_logins,
    scim_group_members,
    scim_resources,
    seats,
    sso_test_results,
)
from domain import orgs
from domain.erasure import ERASED_ACCOUNT_DOMAIN, ErasureError, erase
from domain.postgres import SqlUnitOfWork
from events import catalogue as c

pytestmark = pytest.mark.integration

ISSUER = "https://idp.erasure.example"


@dataclass
class Person:
    """One member's data in every table that can hold it; `secrets` are the values that must go."""

    org: orgs.Org
    member_id: str
    scim_user_id: str | None
    account_id: str
    email: str
    secrets: list[str]


def _org(engine: Engine) -> orgs.Org:
    org, _ = orgs.create(engine, "erase-" + uuid.uuid4().hex[:10])
    return org


def _person(
    engine: Engine, org: orgs.Org, *, status: str = "removed", source: str = "scim", scim: bool = True, tag: str = ""
) -> Person:
    """A member with a row in every table that holds personal data, inserted as the code writes them."""
    token = tag + uuid.uuid4().hex[:8]
    email, home = f"Erin.{token}@Example.COM", f"erin.{token}@home.example"
    name, subject, external_id = f"Erin Eraso {token}", f"idp-subject-{token}", f"00u-{token}"
    member_id, account_id, conflict_id = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    scim_user_id = uuid.uuid4().hex if scim else None
    group_id = uuid.uuid4().hex
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            accounts.insert().values(id=account_id, email=email, email_ci=email.lower(), display_name=name, org_id=org.id)
        )
        conn.execute(
            members.insert().values(
                id=member_id, org_id=org.id, scim_user_id=scim_user_id, external_id=external_id if scim else None,
                user_name=email, email=email, email_ci=email.lower(), display_name=name, status=status, source=source,
                version=3, first_login_at=now, account_id=account_id, conflict_id=None,
            )
        )  # fmt: skip
        conn.execute(member_identities.insert().values(org_id=org.id, issuer=ISSUER, subject=subject, member_id=member_id))
        conn.execute(
            member_activity.insert(),
            [
                {"org_id": org.id, "member_id": member_id, "event_id": str(uuid.uuid4()), "type": t, "source": "sso",
                 "summary": {"method": "oidc", "idp": ISSUER, "email": email, "subject": subject}}
                for t in (c.LOGIN_SUCCEEDED.type, c.MEMBER_LOGGED_IN_FIRST_TIME.type)
            ],
        )  # fmt: skip
        if scim_user_id:
            user = {
                "userName": email,
                "externalId": external_id,
                "displayName": name,
                "emails": [{"value": home}, {"value": email}],
            }
            conn.execute(
                scim_resources.insert(),
                [
                    {"org_id": org.id, "id": scim_user_id, "resource_type": "User", "version": 4, "data": user,
                     "user_name_ci": email.lower(), "external_id": external_id, "display_name_ci": name.lower(),
                     "emails_ci": [home, email.lower()]},
                    {"org_id": org.id, "id": group_id, "resource_type": "Group", "version": 1, "data": {"displayName": "Eng"},
                     "user_name_ci": None, "external_id": None, "display_name_ci": "eng", "emails_ci": []},
                ],
            )  # fmt: skip
            conn.execute(
                scim_group_members.insert().values(org_id=org.id, group_id=group_id, member_id=scim_user_id, display=name)
            )
        error = f"{email} already has an account outside this organisation"
        conn.execute(
            conflicts.insert().values(
                id=conflict_id, org_id=org.id, member_id=member_id, account_id=account_id, email_ci=email.lower(),
                status="acquired", error=error, resolved_at=now, resolved_by=f"invitation:{conflict_id}",
            )
        )  # fmt: skip
        conn.execute(
            invitations.insert().values(
                id=str(uuid.uuid4()), org_id=org.id, conflict_id=conflict_id, member_id=member_id, account_id=account_id,
                status="accepted", accepted_at=now, actor="cli",
            )
        )  # fmt: skip
        for address in (email.lower(), home) if scim else (email.lower(),):  # home: known from the SCIM user only
            conn.execute(
                pending_logins.insert().values(
                    org_id=org.id, email_ci=address, event_id=str(uuid.uuid4()), logged_in_at=now, method="password"
                )
            )
        conn.execute(
            seats.insert().values(
                org_id=org.id, member_id=member_id, state="released", version=2, first_login_at=now,
                first_login_event_id=str(uuid.uuid4()),
            )
        )  # fmt: skip
        letter = {"consumer": "membership", "topic": "lifecycle", "partition": 0, "error": "ValueError('boom')"}
        letters = [
            {**letter, "offset": 1, "key": f"{org.id}:{member_id}", "value": orjson.dumps({"data": {"member_id": member_id}})},
            {**letter, "offset": 2, "key": None, "value": b"\xff\xfe not UTF-8 " + email.upper().encode()},
        ]
        if scim_user_id:  # a SCIM user event, keyed by the user: its snapshot has the names
            letters.append({**letter, "offset": 3, "key": f"{org.id}:{scim_user_id}", "value": orjson.dumps({"name": name})})
        conn.execute(dead_letters.insert(), letters)
        report = {"protocol": "oidc", "sent": [["email", email], ["sub", subject]], "person": {"email": email}}
        conn.execute(sso_test_results.insert().values(id=token, org_id=org.id, report=report))  # a console test sign-in
    return Person(org, member_id, scim_user_id, account_id, email, [email, home, name, subject, external_id])


def _searchable(column: Any) -> Any:
    """The column as text to search, or None for a column that cannot hold text (ids, numbers, dates)."""
    kind = column.type
    if isinstance(kind, LargeBinary):
        return func.encode(column, "escape")
    if isinstance(kind, ARRAY):
        return func.array_to_string(column, " ")
    if isinstance(kind, JSONB | JSON) or (isinstance(kind, String | Text) and not hasattr(kind, "as_uuid")):
        return cast(column, Text)
    return None


def holding(conn: Connection, value: str) -> dict[str, int]:
    """Rows of every table of the schema with a column that mentions `value`, case-insensitively."""
    found: dict[str, int] = {}
    for table in metadata.sorted_tables:
        for column in table.columns:
            text = _searchable(column)
            if text is None:
                continue
            mentions = func.strpos(func.lower(text), value.lower()) > 0
            count = conn.execute(select(func.count()).select_from(table).where(mentions)).scalar_one()
            if count:
                found[f"{table.name}.{column.name}"] = count
    return found


def snapshot(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order: what "nothing changed" compares."""
    return {t.name: sorted((tuple(r) for r in conn.execute(select(t))), key=repr) for t in metadata.sorted_tables}


def erased_rows(conn: Connection, member_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(select(outbox).where(outbox.c.payload["type"].astext == c.MEMBER_ERASED.type))
    return [dict(r._mapping) for r in rows if r.payload["data"]["member_id"] == member_id]


@pytest.fixture
def org(engine: Engine) -> orgs.Org:
    return _org(engine)


@pytest.fixture
def run_erase(engine: Engine, settings: Settings) -> Iterator[Any]:
    """A function that runs `erase` in a transaction of its own, as the command does."""

    def run(org: orgs.Org, member_id: str, actor: str = "privacy-team") -> Any:
        with SqlUnitOfWork.begin(engine, settings.topics()) as work:
            return erase(work, org, member_id, actor)

    yield run


def test_erasing_a_removed_scim_member_leaves_no_personal_data_anywhere(engine, settings, org, run_erase):
    person = _person(engine, org)
    bystander = _person(engine, org, tag="keep")
    with engine.connect() as conn:
        assert all(holding(conn, secret) for secret in person.secrets)  # the search finds what there is

    report = run_erase(org, person.member_id)

    assert report.erased == {
        "members": 1, "member_identities": 1, "member_activity": 2, "scim_resources": 1, "scim_group_members": 1,
        "invitations": 1, "conflicts": 1, "pending_logins": 2, "accounts": 1, "dead_letters": 3,
        "sso_test_results": 1,
    }  # fmt: skip
    assert report.removed is False and report.event_id is not None
    with engine.connect() as conn:
        for secret in person.secrets:
            assert holding(conn, secret) == {}, secret
        for secret in bystander.secrets:  # the same org's other member keeps everything
            assert holding(conn, secret), secret
        member = conn.execute(select(members).where(members.c.id == person.member_id)).one()
        assert (member.org_id, member.scim_user_id, member.status, member.source) == (
            org.id, person.scim_user_id, "removed", "scim",
        )  # fmt: skip
        assert member.first_login_at is not None and member.account_id == person.account_id
        assert (member.email, member.email_ci, member.user_name, member.display_name, member.external_id) == (None,) * 5
        assert member.version == 4  # member.erased is one more member event
        account = conn.execute(select(accounts).where(accounts.c.id == person.account_id)).one()
        assert account.email == f"erased-{person.account_id}@{ERASED_ACCOUNT_DOMAIN}" and account.org_id == org.id
        summaries = conn.execute(select(member_activity.c.summary).where(member_activity.c.member_id == person.member_id))
        assert list(summaries.scalars()) == [{}, {}]  # what happened, and when, stays
        seat = conn.execute(select(seats).where(seats.c.member_id == person.member_id)).one()
        assert (seat.state, seat.version) == ("released", 2)  # the ledger holds no personal data
        kept = conn.execute(select(scim_resources.c.id, scim_resources.c.resource_type).where(scim_resources.c.org_id == org.id))
        assert sorted(t for _, t in kept) == ["Group", "Group", "User"]  # only the erased user went, not its group
        (row,) = erased_rows(conn, person.member_id)
    assert row["event_id"] == report.event_id and row["topic"] == settings.topic_members
    assert row["key"] == f"{org.id}:{person.member_id}" == row["payload"]["partitionkey"]
    assert row["payload"]["data"] == {"member_id": person.member_id, "actor": "privacy-team"}
    assert row["payload"]["resourceversion"] == 4 and row["payload"]["subject"] == f"members/{person.member_id}"


def test_erasing_again_erases_nothing_and_stages_nothing(engine, org, run_erase):
    person = _person(engine, org)
    first = run_erase(org, person.member_id)
    with engine.connect() as conn:
        before = snapshot(conn)

    again = run_erase(org, person.member_id, actor="someone-else")

    assert again.event_id is None and again.removed is False
    assert set(again.erased.values()) == {0} and set(again.erased) == set(first.erased)
    with engine.connect() as conn:
        assert snapshot(conn) == before
        assert [r["event_id"] for r in erased_rows(conn, person.member_id)] == [first.event_id]


@pytest.mark.parametrize("source", ["manual", "sso"])
def test_erasing_a_live_member_no_scim_client_manages_removes_it(engine, org, run_erase, source):
    person = _person(engine, org, status="active", source=source, scim=False)

    report = run_erase(org, person.member_id)

    assert report.removed is True and report.erased["scim_resources"] == 0
    with engine.connect() as conn:
        assert conn.execute(select(members.c.status).where(members.c.id == person.member_id)).scalar_one() == "removed"
        for secret in person.secrets:
            assert holding(conn, secret) == {}, secret
        assert [r["event_id"] for r in erased_rows(conn, person.member_id)] == [report.event_id]


@pytest.mark.parametrize("status", ["provisioned", "active", "deactivated"])
def test_a_member_the_scim_client_still_manages_is_refused_and_nothing_changes(engine, org, run_erase, status):
    person = _person(engine, org, status=status, source="scim")
    with engine.connect() as conn:
        before = snapshot(conn)

    with pytest.raises(ErasureError, match="identity provider") as refused:
        run_erase(org, person.member_id)

    assert refused.value.status == 409
    with engine.connect() as conn:
        assert snapshot(conn) == before


def test_an_unpublished_event_quoting_the_person_defers_the_erasure(engine, settings, org, run_erase):
    person = _person(engine, org)
    cloudevent = {"type": c.LOGIN_SUCCEEDED.type, "data": {"email": person.email.upper()}}
    with engine.begin() as conn:
        conn.execute(
            outbox.insert().values(
                event_id=str(uuid.uuid4()), topic=settings.topic_lifecycle, key=f"{org.id}:x", payload=cloudevent
            )
        )
        before = snapshot(conn)

    with pytest.raises(ErasureError, match="still waiting to be published") as deferred:
        run_erase(org, person.member_id)

    assert deferred.value.status == 409
    with engine.begin() as conn:
        assert snapshot(conn) == before
        # the relay publishes it (and deletes the row): now the erasure goes through
        conn.execute(outbox.delete().where(func.strpos(cast(outbox.c.payload, Text), person.email.upper()) > 0))
    assert run_erase(org, person.member_id).event_id is not None


def test_only_a_member_of_the_org_can_be_erased(engine, org, run_erase):
    elsewhere = _person(engine, _org(engine))
    with engine.connect() as conn:
        before = snapshot(conn)
    for member_id in (elsewhere.member_id, str(uuid.uuid4()), "not-a-uuid"):
        with pytest.raises(ErasureError, match="no member") as missing:
            run_erase(org, member_id)
        assert missing.value.status == 404
    with engine.connect() as conn:
        assert snapshot(conn) == before


def test_an_account_the_org_does_not_own_is_left_to_its_owner(engine, org, run_erase):
    person = _person(engine, org)
    with engine.begin() as conn:
        conn.execute(update(accounts).where(accounts.c.id == person.account_id).values(org_id=None))
    assert run_erase(org, person.member_id).erased["accounts"] == 0
    with engine.connect() as conn:
        assert conn.execute(select(accounts.c.email).where(accounts.c.id == person.account_id)).scalar_one() == person.email


# -- the command ----------------------------------------------------------------------------------


def test_the_command_asks_first_then_erases_and_prints_what_it_erased(engine, settings, org):
    person = _person(engine, org)
    runner, env = CliRunner(), to_env(settings)
    command = ["members", "erase", org.slug, person.member_id, "--actor", "dpo"]

    declined = runner.invoke(app, command, env=env, input="n\n")
    assert declined.exit_code == 2 and "nothing was erased" in declined.output
    with engine.connect() as conn:
        assert holding(conn, person.email)

    done = runner.invoke(app, command, env=env, input="y\n")
    assert done.exit_code == 0, done.output
    report = orjson.loads(done.stdout.splitlines()[-1])
    assert (report["org"], report["member_id"], report["erased"]["members"], report["erased"]["accounts"]) == (
        org.slug, person.member_id, 1, 1,
    )  # fmt: skip
    with engine.connect() as conn:
        assert holding(conn, person.email) == {}
        (row,) = erased_rows(conn, person.member_id)
    assert row["event_id"] == report["event_id"] and row["payload"]["data"]["actor"] == "dpo"

    again = runner.invoke(app, [*command, "--yes"], env=env)
    assert again.exit_code == 0 and orjson.loads(again.stdout)["event_id"] is None


def test_the_command_says_why_it_refuses(engine, settings, org):
    managed = _person(engine, org, status="active")
    runner, env = CliRunner(), to_env(settings)
    for args, message in (
        ([org.slug, managed.member_id], "identity provider"),
        ([org.slug, str(uuid.uuid4())], "no member"),
        (["no-such-org-" + uuid.uuid4().hex[:6], managed.member_id], "no org"),
    ):
        result = runner.invoke(app, ["members", "erase", *args, "--yes"], env=env)
        assert result.exit_code == 2 and message in result.output, result.output
        assert result.output.startswith("error: ")
