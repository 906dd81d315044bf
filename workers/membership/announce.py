"""The member events the membership worker announces (for the conflict, billing and signals workers)."""

from domain.model import Member
from events import catalogue as c
from events.envelope import Event


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
