"""Sign-ins, manual adds and manual removals, applied one event at a time (domain.sign_ins says
who a sign-in is). A sign-in makes a provisioned member active: their first login ever, or their
first since a reactivation (`member.returned`), which billing turns into a restored seat."""

import uuid
from datetime import datetime
from typing import Any

from domain import sign_ins
from domain.model import Activity, Member, MemberStatus, Outcome, PendingLogin, Source, sign_in_effect, transition
from domain.uow import UnitOfWork
from events import catalogue as c
from events.envelope import Event
from workers.membership.facts import member_event


def apply_login(uow: UnitOfWork, event: Event) -> Outcome:
    data = event.data
    org_id, email_ci, issuer, subject = event.org_id, data["email"].lower(), data.get("idp"), data.get("subject")
    at = datetime.fromisoformat(data["logged_in_at"])
    uow.lock_people([(org_id, email_ci)])
    member = sign_ins.resolve(uow, org_id, email_ci, issuer, subject)
    announced: list[Event] = []
    if member is not None and member.status == MemberStatus.REMOVED:
        if not data.get("jit"):
            member = None
        else:  # bound to this subject before: the same person, back just in time
            member.status = MemberStatus.PROVISIONED
            announced.append(member_event(c.MEMBER_REACTIVATED, event, member))
    if member is None and not data.get("jit"):  # its seat claim, if any, stays until it counts
        uow.pending_logins.add(PendingLogin(org_id, email_ci, event.id, at, data["method"], data.get("sign_in_id")))
        return Outcome.PENDING
    if data.get("sign_in_id"):
        uow.seat_claims.remove(org_id, data["sign_in_id"])  # the member's status counts the seat from here
    if member is None:
        member = Member(
            id=str(uuid.uuid4()), org_id=org_id, scim_user_id=None, user_name=data["email"], email=data["email"],
            email_ci=email_ci, display_name=None, status=MemberStatus.ACTIVE, source=Source.SSO, first_login_at=at,
        )  # fmt: skip
        uow.members.add([member])
        announced += [member_event(c.MEMBER_CREATED, event, member), member_event(c.MEMBER_LOGGED_IN_FIRST_TIME, event, member)]
    else:
        if member.source == Source.SSO and member.email != data["email"]:
            member.email, member.email_ci, member.user_name = data["email"], email_ci, data["email"]  # the IdP owns it
        effect = sign_in_effect(member.status, member.first_login_at)
        if effect is not None:
            member.status = MemberStatus.ACTIVE
            member.first_login_at = member.first_login_at or at
            announced.append(member_event(effect, event, member))
        uow.members.save([member])
    if issuer and subject:
        uow.identities.bind(org_id, issuer, subject, member.id)
    source = Source.SSO if data.get("sso") else Source.APP
    uow.activity.add([Activity(org_id, member.id, event.id, event.type, source, _summary(event))])
    uow.stage(announced)
    return Outcome.APPLIED


def apply_manual_add(uow: UnitOfWork, event: Event) -> Outcome:
    """An admin added a person by hand: a `provisioned` member with source `manual`, with the id the
    admin's request gave it."""
    email, member_id = event.data["email"], event.data["member_id"]
    email_ci = email.lower()
    uow.lock_people([(event.org_id, email_ci)])
    if uow.members.get(member_id) is not None or uow.members.live_by_email(event.org_id, email_ci) is not None:
        return Outcome.IGNORED
    member = Member(
        id=member_id, org_id=event.org_id, scim_user_id=None, user_name=email, email=email, email_ci=email_ci,
        display_name=event.data.get("display_name"), status=MemberStatus.PROVISIONED, source=Source.MANUAL,
    )  # fmt: skip
    summary = {"actor": event.data.get("actor"), "email": email}
    uow.activity.add([Activity(event.org_id, member.id, event.id, event.type, Source.MANUAL, summary)])
    announced = [member_event(c.MEMBER_CREATED, event, member)]
    early = uow.pending_logins.find([(event.org_id, email_ci)]).get((event.org_id, email_ci))
    if early is not None:
        uow.pending_logins.remove([(event.org_id, email_ci)])
        if claims_early_seat(uow, early):
            member.status, member.first_login_at = MemberStatus.ACTIVE, early.logged_in_at
            announced.append(member_event(c.MEMBER_LOGGED_IN_FIRST_TIME, event, member))
    uow.members.add([member])
    uow.stage(announced)
    return Outcome.APPLIED


def apply_manual_remove(uow: UnitOfWork, event: Event) -> Outcome:
    """An admin removed a member no SCIM client manages: removed, and its seat released by billing."""
    member = uow.members.get(event.data["member_id"])
    if member is None or member.org_id != event.org_id or member.status == MemberStatus.REMOVED:
        return Outcome.IGNORED
    if member.scim_user_id is not None:
        return Outcome.IGNORED  # the IdP manages it (checked by the admin command too)
    before, member.status = member.status, MemberStatus.REMOVED
    kind = transition(before, member.status)
    announced = [member_event(kind, event, member)] if kind else []
    uow.members.save([member])
    summary = {"actor": event.data.get("actor")}
    uow.activity.add([Activity(event.org_id, member.id, event.id, event.type, Source.MANUAL, summary)])
    uow.stage(announced)
    return Outcome.APPLIED


def claims_early_seat(uow: UnitOfWork, early: PendingLogin) -> bool:
    """A sign-in that arrived before its member did counts as the new member's first login: at once
    when ingest claimed a seat for it (the claim is released now: the member's status counts it),
    else only while the org has a seat for it."""
    if early.sign_in_id and uow.seat_claims.remove(early.org_id, early.sign_in_id):
        return True
    org = uow.orgs.by_id(early.org_id)
    return org is None or not sign_ins.refuses_seat(uow, org)


def _summary(event: Event) -> dict[str, Any]:
    return {"method": event.data.get("method"), "idp": event.data.get("idp"), "jit": event.data.get("jit")}
