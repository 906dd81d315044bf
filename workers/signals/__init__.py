"""The signals worker: ends a deactivated or removed member's sessions in the app, at once.

For each `member.deactivated` and `member.removed` it stages a CAEP `session-revoked` Security
Event Token (RFC 8417) in `security_events`, in the same transaction as the event's tracking row,
so each member event yields one signal, once. `workers/signals/delivery.py` pushes it to the
receiver the operator configures (`caep_push_url`, RFC 8935) with retries, and dead-letters it
when the receiver refuses it or keeps failing. With no receiver configured it stages nothing.

The signal's time (`event_timestamp`, and the start of the delivery-time metric) is the member
event's `causetime`: when the SCIM write or admin action that deactivated the member was recorded.
"""

from domain.model import Outcome, SecurityEvent
from domain.uow import UnitOfWork
from events import catalogue as c
from events import security_event_token as tokens
from events.envelope import Event

CONSUMER = "signals"

REASONS = {c.MEMBER_DEACTIVATED: "deactivated", c.MEMBER_REMOVED: "removed"}


class Signals:
    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.TYPES = frozenset(k.type for k in REASONS) if enabled else frozenset()

    def apply(self, events: list[Event], uow: UnitOfWork) -> list[Outcome]:
        staged: list[SecurityEvent] = []
        outcomes: list[Outcome] = []
        for event in events:
            reason = REASONS.get(event.kind)
            if reason is None or not self.enabled:
                outcomes.append(Outcome.IGNORED)
                continue
            staged.append(SecurityEvent(
                jti=tokens.jti_for(event.id),
                org_id=event.org_id,
                member_id=event.data["member_id"],
                event_type=tokens.SESSION_REVOKED,
                reason=reason,
                occurred_at=event.cause_time or event.time,
            ))  # fmt: skip
            outcomes.append(Outcome.APPLIED)
        uow.security_events.stage(staged)
        return outcomes
