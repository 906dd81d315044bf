"""The app's own sign-ins, set-wise: a run of consecutive `login.succeeded` events that name no IdP
subject (password, magic link, social login: all of `POST /internal/v1/logins`) is applied in a
few statements, whatever its length, with the effect of applying them one at a time.

Such a sign-in is the oldest live member with its email, or nobody yet (kept as an early sign-in
until the member is created): it creates no member and binds no subject, so what one sign-in of
the run does is seen by the next through the members read once for the whole run. A sign-in
through the org's IdP (an issuer and subject to match, just in time) is applied alone
(`apply_login`), in its place.
"""

from datetime import datetime
from typing import Any

from domain.model import Activity, Member, MemberStatus, Outcome, PendingLogin, Source, sign_in_effect
from domain.uow import Person, UnitOfWork
from events import catalogue as c
from events.envelope import Event
from workers.membership.announce import member_event


def set_wise(event: Event) -> bool:
    data = event.data
    return event.kind is c.LOGIN_SUCCEEDED and not data.get("jit") and not (data.get("idp") and data.get("subject"))


def apply_sign_ins(uow: UnitOfWork, events: list[Event]) -> list[Outcome]:
    """Outcomes in the order of `events`, all of them `set_wise`."""
    people = {(e.org_id, e.data["email"].lower()) for e in events}
    uow.lock_people(people)
    live = uow.members.live_by_emails(people)
    outcomes: list[Outcome] = []
    early: list[PendingLogin] = []
    claims: list[tuple[str, str]] = []
    changed: dict[str, Member] = {}
    announced: list[Event] = []
    activity: list[Activity] = []
    for event in events:
        person: Person = (event.org_id, event.data["email"].lower())
        member = live.get(person)
        if member is None:  # its seat claim, if any, stays until it counts
            early.append(early_sign_in(event))
            outcomes.append(Outcome.PENDING)
            continue
        if event.data.get("sign_in_id"):
            claims.append((event.org_id, event.data["sign_in_id"]))  # the member's status counts the seat from here
        announced += signed_in(member, event)
        changed[member.id] = member
        activity.append(sign_in_activity(event, member))
        outcomes.append(Outcome.APPLIED)
    uow.pending_logins.add(early)
    uow.seat_claims.remove_all(claims)
    uow.members.save(list(changed.values()))
    uow.activity.add(activity)
    uow.stage(announced)
    return outcomes


def signed_in(member: Member, event: Event) -> list[Event]:
    """What a sign-in does to a member it found: the email the IdP owns, and a provisioned member's
    first sign-in (ever, or since a reactivation), announced."""
    data = event.data
    if member.source == Source.SSO and member.email != data["email"]:
        member.email, member.email_ci, member.user_name = data["email"], data["email"].lower(), data["email"]
    effect = sign_in_effect(member.status, member.first_login_at)
    if effect is None:
        return []
    member.status = MemberStatus.ACTIVE
    member.first_login_at = member.first_login_at or datetime.fromisoformat(data["logged_in_at"])
    return [member_event(effect, event, member)]


def sign_in_activity(event: Event, member: Member) -> Activity:
    source = Source.SSO if event.data.get("sso") else Source.APP
    return Activity(event.org_id, member.id, event.id, event.type, source, _summary(event))


def early_sign_in(event: Event) -> PendingLogin:
    """A sign-in before its member exists, kept until the member is created."""
    data = event.data
    at = datetime.fromisoformat(data["logged_in_at"])
    return PendingLogin(event.org_id, data["email"].lower(), event.id, at, data["method"], data.get("sign_in_id"))


def _summary(event: Event) -> dict[str, Any]:
    return {"method": event.data.get("method"), "idp": event.data.get("idp"), "jit": event.data.get("jit")}
