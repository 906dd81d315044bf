"""The membership worker: applies user and group lifecycle, manual adds and removals, and sign-ins
to the org's membership (statuses and rules, who a sign-in is, in domain.model).

A member is a person with a stable id: an email or userName change keeps the member; a SCIM user
created anew with the externalId of a removed member is that member again (re-created by the
IdP); anyone else, even with an old email, is a new member. An event older than the state it
would change (`resourceversion` below the applied one) is stale and changes nothing, so
redelivery and reordering are harmless. A sign-in before its member exists waits (pending) until
the member is created, unless SSO provisioning creates the member just in time. Every member it
creates is announced (`member.created`, for the conflict worker) and every status change billing
cares about too (for the billing worker); what arrived for a member is kept as its activity.
"""

import uuid
from datetime import datetime

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
    email_of,
    refuses_seat,
    resolve_sign_in,
    sign_in_effect,
    status_after,
    transition,
)
from domain.uow import Person, UnitOfWork, UserKey
from events import catalogue as c
from events.envelope import Event
from workers.membership.announce import member_event
from workers.membership.groups import apply_group, apply_links
from workers.membership.sign_ins import apply_sign_ins, early_sign_in, set_wise, sign_in_activity, signed_in

CONSUMER = "membership"


class Membership:
    """A batch is cut into runs of consecutive events of one family (user lifecycle, group member
    links, the app's own sign-ins), each applied set-wise in a few statements; any other event is applied alone, in its
    place, so the order of events within a partition is kept. A batch of one is the same rule."""

    def apply(self, events: list[Event], uow: UnitOfWork) -> list[Outcome]:
        outcomes: list[Outcome] = []
        run: list[Event] = []
        family: frozenset[c.EventType] | None = None

        def flush() -> None:
            if run:
                apply_run = apply_users if family is USER_EVENTS else apply_links if family is LINK_EVENTS else apply_sign_ins
                outcomes.extend(apply_run(uow, run))
                run.clear()

        for event in events:
            kind = _family(event)
            if kind is not family:
                flush()
                family = kind
            if kind is None:
                outcomes.append(_apply_one(uow, event))
            else:
                run.append(event)
        flush()
        return outcomes


_SIGN_INS = frozenset({c.LOGIN_SUCCEEDED})  # those without an IdP subject (`set_wise`)


def _family(event: Event) -> frozenset[c.EventType] | None:
    """The run an event may be applied in, set-wise; None to apply it alone."""
    if event.kind in USER_EVENTS:
        return USER_EVENTS
    if event.kind in LINK_EVENTS:
        return LINK_EVENTS
    return _SIGN_INS if set_wise(event) else None


def _apply_one(uow: UnitOfWork, event: Event) -> Outcome:
    if event.kind is c.LOGIN_SUCCEEDED:
        return apply_login(uow, event)
    if event.kind is c.MEMBER_MANUALLY_ADDED:
        return apply_manual_add(uow, event)
    if event.kind is c.MEMBER_MANUALLY_REMOVED:
        return apply_manual_remove(uow, event)
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
        new = [e for e in events if (e.org_id, e.data["user_id"]) not in self.state]
        # removed members the IdP may be creating again (same externalId)
        self.returning = uow.members.removed_by_external_id(
            {(e.org_id, e.data["external_id"]) for e in new if e.data.get("external_id")}
        )
        # people who may become members now: a sign-in that arrived before them counts as their first
        people = {(e.org_id, email.lower()) for e in new if (email := email_of(e.data))}
        self.pending = {}
        if people:
            uow.lock_people(people)
            self.pending = uow.pending_logins.find(people)

    def apply(self, event: Event) -> Outcome:
        data = event.data
        key = (event.org_id, data["user_id"])
        member = self.state.get(key)
        if member is None:
            member = self._returning(event)
            if member is None:
                return self._create(event)
        elif event.resource_version < member.seq or member.status == MemberStatus.REMOVED:
            return Outcome.STALE
        before = member.status
        self._take(member, event)
        member.status = status_after(event.kind, data.get("active", True), before)
        self.changed[member.id] = member
        if event.kind is c.USER_DELETED:
            self.unlinked.append(key)
        self._record(event, member)
        kind = transition(before, member.status)
        if kind is not None:
            self.announced.append(member_event(kind, event, member))
        if before == MemberStatus.REMOVED and member.email_ci and member.status == MemberStatus.PROVISIONED:
            self._claim_early_sign_in(event, member)  # re-created: a sign-in may have waited for it
        return Outcome.APPLIED

    def _returning(self, event: Event) -> Member | None:
        """The removed member a new SCIM user is, by its externalId (the IdP's id for the person)."""
        external_id = event.data.get("external_id")
        member = self.returning.pop((event.org_id, external_id), None) if external_id else None
        if member is not None:
            member.scim_user_id = event.data["user_id"]
            member.seq = event.resource_version  # the new SCIM resource counts its versions afresh
            self.state[(event.org_id, event.data["user_id"])] = member
        return member

    def _create(self, event: Event) -> Outcome:
        data = event.data
        member = Member(
            id=str(uuid.uuid4()), org_id=event.org_id, scim_user_id=data["user_id"], user_name=None, email=None,
            email_ci=None, display_name=None, status=status_after(event.kind, data.get("active", True), None),
            source=Source.SCIM,
        )  # fmt: skip
        self._take(member, event)
        self.state[(event.org_id, data["user_id"])] = member
        self.created.append(member)
        self._record(event, member)
        if member.status != MemberStatus.REMOVED:
            self.announced.append(member_event(c.MEMBER_CREATED, event, member))
        if member.email_ci and member.status == MemberStatus.PROVISIONED:
            self._claim_early_sign_in(event, member)
        return Outcome.APPLIED

    @staticmethod
    def _take(member: Member, event: Event) -> None:
        """What the SCIM user says about the person (their email and names may change: the member stays)."""
        data = event.data
        email = email_of(data)
        member.user_name, member.display_name = data.get("user_name"), data.get("display_name")
        member.given_name, member.family_name = data.get("given_name"), data.get("family_name")
        member.external_id = data.get("external_id")
        member.email, member.email_ci = email, email.lower() if email else None
        member.seq = event.resource_version

    def _record(self, event: Event, member: Member) -> None:
        summary = {"active": event.data.get("active"), "email": event.data.get("email")}
        self.activity.append(Activity(event.org_id, member.id, event.id, event.type, Source.SCIM, summary))

    def _claim_early_sign_in(self, event: Event, member: Member) -> None:
        """A sign-in that arrived before its member existed (or was re-created) counts now: the new
        member's first login, or a returning member's first sign-in since."""
        person = (event.org_id, str(member.email_ci))
        early = self.pending.pop(person, None)
        effect = sign_in_effect(member.status, member.first_login_at)
        if early is not None and effect is not None:
            self.claimed.append(person)
            if claims_early_seat(self.uow, early):
                member.first_login_at, member.status = member.first_login_at or early.logged_in_at, MemberStatus.ACTIVE
                self.announced.append(member_event(effect, event, member))

    def write(self) -> None:
        new = {m.id for m in self.created}  # inserted with their final state
        self.uow.members.add(self.created)
        self.uow.members.save([m for m in self.changed.values() if m.id not in new])
        for org_id, user_id in self.unlinked:
            self.uow.groups.unlink_user(org_id, user_id)
        self.uow.pending_logins.remove(self.claimed)
        self.uow.activity.add(self.activity)
        self.uow.stage(self.announced)


# -- sign-ins, manual adds and removals, one event at a time ---------------------------------------
#
# A sign-in makes a provisioned member active: their first login ever, or their first since a
# reactivation (`member.returned`), which billing turns into a restored seat.


def apply_login(uow: UnitOfWork, event: Event) -> Outcome:
    data = event.data
    org_id, email_ci, issuer, subject = event.org_id, data["email"].lower(), data.get("idp"), data.get("subject")
    at = datetime.fromisoformat(data["logged_in_at"])
    uow.lock_people([(org_id, email_ci)])
    member = resolve_sign_in(uow, org_id, email_ci, issuer, subject)
    announced: list[Event] = []
    if member is not None and member.status == MemberStatus.REMOVED:
        if not data.get("jit"):
            member = None
        else:  # bound to this subject before: the same person, back just in time
            member.status = MemberStatus.PROVISIONED
            announced.append(member_event(c.MEMBER_REACTIVATED, event, member))
    if member is None and not data.get("jit"):  # its seat claim, if any, stays until it counts
        uow.pending_logins.add([early_sign_in(event)])
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
        announced += signed_in(member, event)
        uow.members.save([member])
    if issuer and subject:
        uow.identities.bind(org_id, issuer, subject, member.id)
    uow.activity.add([sign_in_activity(event, member)])
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
    return org is None or not refuses_seat(uow, org)
