"""The membership worker: applies user and group lifecycle, manual adds and sign-ins to the org's
membership (statuses and rules in domain.model).

An event older than the state it would change (`resourceversion` below the applied one) is
stale and changes nothing, so redelivery and reordering are harmless. A sign-in before its
member exists waits (pending) until the member is created, unless SSO provisioning creates the
member just in time. Every member it creates is announced (`member.created`, for the conflict
worker) and every status change billing cares about too (for the billing worker); what arrived
for a member is kept as its activity.
"""

import uuid
from datetime import datetime
from typing import Any

from domain.model import (
    GROUP_EVENTS,
    LINK_EVENTS,
    USER_EVENTS,
    Activity,
    Member,
    MemberStatus,
    Outcome,
    PendingLogin,
    Source,
    counts_as_first_login,
    email_of,
    status_after,
    transition,
)
from domain.uow import Person, UnitOfWork, UserKey
from events import catalogue as c
from events.envelope import Event
from workers.membership.groups import apply_group, apply_links

CONSUMER = "membership"


class Membership:
    """A batch is cut into runs of consecutive events of one family (user lifecycle, group member
    links), each applied set-wise in a few statements; any other event is applied alone, in its
    place, so the order of events within a partition is kept. A batch of one is the same rule."""

    def apply(self, events: list[Event], uow: UnitOfWork) -> list[Outcome]:
        outcomes: list[Outcome] = []
        run: list[Event] = []
        family: frozenset[c.EventType] | None = None

        def flush() -> None:
            if run:
                outcomes.extend(apply_users(uow, run) if family is USER_EVENTS else apply_links(uow, run))
                run.clear()

        for event in events:
            kind = USER_EVENTS if event.kind in USER_EVENTS else LINK_EVENTS if event.kind in LINK_EVENTS else None
            if kind is not family:
                flush()
                family = kind
            if kind is None:
                outcomes.append(_apply_one(uow, event))
            else:
                run.append(event)
        flush()
        return outcomes


def _apply_one(uow: UnitOfWork, event: Event) -> Outcome:
    if event.kind is c.LOGIN_SUCCEEDED:
        return apply_login(uow, event)
    if event.kind is c.MEMBER_MANUALLY_ADDED:
        return apply_manual_add(uow, event)
    if event.kind in GROUP_EVENTS:
        return apply_group(uow, event)
    return Outcome.IGNORED


# -- SCIM users, set-wise ------------------------------------------------------------------------


def apply_users(uow: UnitOfWork, events: list[Event]) -> list[Outcome]:
    """Outcomes in the order of `events`, all of them user lifecycle events."""
    run = _Run(uow, events)
    outcomes = [run.apply(event) for event in events]
    run.write()
    return outcomes


class _Run:
    def __init__(self, uow: UnitOfWork, events: list[Event]):
        self.uow = uow
        self.state: dict[UserKey, Member] = uow.members.by_scim_user((e.org_id, e.data["user_id"]) for e in events)
        self.created: list[Member] = []
        self.changed: dict[str, Member] = {}
        self.activity: list[Activity] = []
        self.announced: list[Event] = []
        self.claimed: list[Person] = []
        self.unlinked: list[UserKey] = []
        # people who may become members now: a sign-in that arrived before them counts as their first
        people = {
            (e.org_id, email.lower())
            for e in events
            if (e.org_id, e.data["user_id"]) not in self.state and (email := email_of(e.data))
        }
        self.pending = {}
        if people:
            uow.lock_people(people)
            self.pending = uow.pending_logins.find(people)

    def apply(self, event: Event) -> Outcome:
        data = event.data
        key = (event.org_id, data["user_id"])
        member = self.state.get(key)
        before = member.status if member else None
        email = email_of(data)
        if member is None:
            member = Member(
                id=str(uuid.uuid4()),
                org_id=event.org_id,
                scim_user_id=data["user_id"],
                user_name=data.get("user_name"),
                email=email,
                email_ci=email.lower() if email else None,
                display_name=data.get("display_name"),
                status=status_after(event.kind, data.get("active", True), None),
                source=Source.SCIM,
                seq=event.resource_version,
            )
            self.state[key] = member
            self.created.append(member)
        else:
            if event.resource_version < member.seq or member.status == MemberStatus.REMOVED:
                return Outcome.STALE
            member.user_name, member.display_name = data.get("user_name"), data.get("display_name")
            member.email, member.email_ci = email, email.lower() if email else None
            member.seq = event.resource_version
            member.status = status_after(event.kind, data.get("active", True), member.first_login_at)
            self.changed[member.id] = member
            if event.kind is c.USER_DELETED:
                self.unlinked.append(key)
        summary = {"active": data.get("active"), "email": data.get("email")}
        self.activity.append(Activity(event.org_id, member.id, event.id, event.type, Source.SCIM, summary))
        if before is None and member.status != MemberStatus.REMOVED:
            self.announced.append(member_event(c.MEMBER_CREATED, event, member))
        kind = transition(before, member.status)
        if kind is not None:
            self.announced.append(member_event(kind, event, member))
        if before is None and member.email_ci and member.status == MemberStatus.PROVISIONED:
            self._claim_early_sign_in(event, member)
        return Outcome.APPLIED

    def _claim_early_sign_in(self, event: Event, member: Member) -> None:
        """A sign-in that arrived before its member existed counts now, as that member's first."""
        person = (event.org_id, str(member.email_ci))
        logged_in_at = self.pending.pop(person, None)
        if logged_in_at is not None:
            self.claimed.append(person)
            member.first_login_at, member.status = logged_in_at, MemberStatus.ACTIVE
            self.announced.append(member_event(c.MEMBER_LOGGED_IN_FIRST_TIME, event, member))

    def write(self) -> None:
        new = {m.id for m in self.created}  # inserted with their final state
        self.uow.members.add(self.created)
        self.uow.members.save([m for m in self.changed.values() if m.id not in new])
        for org_id, user_id in self.unlinked:
            self.uow.groups.unlink_user(org_id, user_id)
        self.uow.pending_logins.remove(self.claimed)
        self.uow.activity.add(self.activity)
        self.uow.stage(self.announced)


# -- sign-ins and manual adds ---------------------------------------------------------------------


def apply_login(uow: UnitOfWork, event: Event) -> Outcome:
    data = event.data
    email_ci = data["email"].lower()
    at = datetime.fromisoformat(data["logged_in_at"])
    uow.lock_people([(event.org_id, email_ci)])
    member = uow.members.live_by_email(event.org_id, email_ci)
    if member is None:
        if not data.get("jit"):
            uow.pending_logins.add(PendingLogin(event.org_id, email_ci, event.id, at, data["method"]))
            return Outcome.PENDING
        member = Member(
            id=str(uuid.uuid4()),
            org_id=event.org_id,
            scim_user_id=None,
            user_name=data["email"],
            email=data["email"],
            email_ci=email_ci,
            display_name=None,
            status=MemberStatus.ACTIVE,
            source=Source.SSO,
            first_login_at=at,
        )
        uow.activity.add([Activity(event.org_id, member.id, event.id, event.type, Source.SSO, _summary(event))])
        announced = [member_event(c.MEMBER_CREATED, event, member), member_event(c.MEMBER_LOGGED_IN_FIRST_TIME, event, member)]
        uow.members.add([member])
        uow.stage(announced)
        return Outcome.APPLIED
    source = Source.SSO if data.get("sso") else Source.APP
    uow.activity.add([Activity(event.org_id, member.id, event.id, event.type, source, _summary(event))])
    if counts_as_first_login(member.status, member.first_login_at):
        _first_login(uow, event, member, at)
    return Outcome.APPLIED


def apply_manual_add(uow: UnitOfWork, event: Event) -> Outcome:
    """An admin added a person by hand: a `provisioned` member with source `manual`."""
    email = event.data["email"]
    email_ci = email.lower()
    uow.lock_people([(event.org_id, email_ci)])
    if uow.members.live_by_email(event.org_id, email_ci) is not None:
        return Outcome.IGNORED
    member = Member(
        id=str(uuid.uuid4()),
        org_id=event.org_id,
        scim_user_id=None,
        user_name=email,
        email=email,
        email_ci=email_ci,
        display_name=event.data.get("display_name"),
        status=MemberStatus.PROVISIONED,
        source=Source.MANUAL,
    )
    summary = {"actor": event.data.get("actor"), "email": email}
    uow.activity.add([Activity(event.org_id, member.id, event.id, event.type, Source.MANUAL, summary)])
    announced = [member_event(c.MEMBER_CREATED, event, member)]
    early = uow.pending_logins.find([(event.org_id, email_ci)])
    uow.members.add([member])
    uow.stage(announced)
    if early:
        uow.pending_logins.remove(early)
        _first_login(uow, event, member, early[(event.org_id, email_ci)])
    return Outcome.APPLIED


def _first_login(uow: UnitOfWork, cause: Event, member: Member, at: datetime) -> None:
    member.first_login_at, member.status = at, MemberStatus.ACTIVE
    announced = member_event(c.MEMBER_LOGGED_IN_FIRST_TIME, cause, member)
    uow.members.save([member])
    uow.stage([announced])


def _summary(event: Event) -> dict[str, Any]:
    return {"method": event.data.get("method"), "idp": event.data.get("idp"), "jit": event.data.get("jit")}


def member_event(kind: c.EventType, cause: Event, member: Member) -> Event:
    """Count one more event of `member` and build it, caused by `cause`."""
    member.version += 1
    payload = c.PAYLOAD_OF[kind](
        member_id=member.id,  # type: ignore[call-arg]
        email=member.email,
        source=member.source,
        status=member.status,
        first_login_at=member.first_login_at.isoformat() if member.first_login_at else None,
        cause_event_id=cause.id,
    )
    return cause.causes(payload, version=member.version)
