"""The one envelope on Kafka (CloudEvents 1.0, structured JSON mode), and `Payload`, the base of
every event type's body: the catalogue's classes declare on it their subject, key and id.

Extensions (lowercase, per the CloudEvents naming rule): `orgid`, `orgslug`, `partitionkey`
(the Kafka key; the CloudEvents partitioning extension), `resourceversion` (the version of the
resource the event is about: consumers drop an event older than what they applied),
`correlationid` (the request that caused it) and `causetime` (when the change that started the
chain was recorded: a member, conflict or billing event carries its first cause's `time`).

`resourceversion` is a CloudEvents Integer, a signed 32-bit value: every version is a counter
(a SCIM resource's, a member's, a seat's), from 1. An org-level fact (a sign-in, an admin's
action, an account) is about no versioned resource, so it carries none (`UNVERSIONED`): the
attribute is left out. `time` is when the provisioner recorded the event (built it, in the
transaction that stages it); when something happened in the world is data (`logged_in_at`, ...).
"""

import uuid
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

import orjson

if TYPE_CHECKING:  # the catalogue imports this module (for Payload): its names are read at call time
    from events.catalogue import EventType

SPECVERSION = "1.0"
# The event contract's version is in every schema's URL (docs/events.md, compatibility): additive
# changes keep it, anything else bumps it. 2: members are ids (no email in keys or billing data).
CONTRACT_VERSION = 2
SCHEMA_BASE = f"https://provisioner.dev/schemas/events/v{CONTRACT_VERSION}/"
UNVERSIONED = 0  # the event is about no versioned resource: no `resourceversion` on the wire
INTEGER_MAX = 2**31 - 1  # CloudEvents 1.0's Integer type is signed 32-bit
_NAMESPACE = uuid.UUID("6f1b2a52-6a4e-4c43-9a38-7b7e5c1d0e11")


def deterministic_id(*parts: object) -> str:
    """An event id derived from what makes the fact unique, so a re-emission is the same event."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(str(p) for p in parts)))


class Payload:
    """The typed body of one event type; `data()` is the CloudEvent's `data` as sent.

    `SUBJECT` and `KEY` are templates over the payload's fields (and `org_id`); the Kafka key is
    `<org id>:<KEY>`. `identity` says what the deterministic event id derives from."""

    KIND: ClassVar["EventType"]
    SUBJECT: ClassVar[str]
    KEY: ClassVar[str]

    def address(self, org_id: str) -> tuple[str, str]:
        """The event's subject, and its Kafka key's part after `<org id>:`, from the templates;
        `{email_ci}` is the email lower-cased."""
        values = {**self.__dict__, "org_id": org_id}
        email = values.get("email")
        values["email_ci"] = email.lower() if isinstance(email, str) else email
        return self.SUBJECT.format_map(values), self.KEY.format_map(values)

    def identity(self, org_id: str, subject: str, occasion: object) -> tuple[object, ...]:
        """What the deterministic event id derives from; `occasion` tells repeated facts apart
        (a SCIM resource version, a transaction id, the causing event's id)."""
        return (self.KIND.type, org_id, subject, occasion)

    def data(self) -> dict[str, Any]:
        return dict(self.__dict__)  # a frozen dataclass's instance dict holds its fields, in order

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Self:
        """Read a payload back from an event's `data` (absent optional fields are None)."""
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})  # type: ignore[arg-type]


_P = TypeVar("_P", bound=Payload)


def kind_of(base: type[_P], kind: "EventType") -> type[_P]:
    """The payload class of one event type whose body is `base`'s."""
    return type(kind.name, (base,), {"KIND": kind, "__doc__": f"`{kind.type}`: {base.__doc__ or base.__name__}"})


class EnvelopeError(ValueError):
    """A record that is not a valid envelope: the consumer dead-letters it."""


@dataclass(frozen=True)
class Event:
    """A fact about an org, ready for the outbox."""

    kind: "EventType"
    org_id: str
    org_slug: str
    subject: str
    key: str
    resource_version: int  # UNVERSIONED (0) for an org-level fact
    data: dict[str, Any]
    id: str
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    correlation_id: str | None = None
    # when the change that started this chain of events was recorded (the first event's `time`)
    cause_time: datetime | None = None

    @classmethod
    def of(
        cls,
        payload: Payload,
        *,
        org_id: str,
        org_slug: str,
        version: int,
        occasion: object,
        correlation_id: str | None = None,
    ) -> "Event":
        """The event a payload makes: subject, key and id as its class declares them; `version` is
        the resource's counter (at most INTEGER_MAX), or UNVERSIONED; `time` is now."""
        if not UNVERSIONED <= version <= INTEGER_MAX:
            raise ValueError(f"resourceversion {version} is outside CloudEvents' Integer range (0..{INTEGER_MAX})")
        subject, key = payload.address(org_id)
        return cls(
            kind=payload.KIND,
            org_id=org_id,
            org_slug=org_slug,
            subject=subject,
            key=f"{org_id}:{key}",
            resource_version=version,
            data=payload.data(),
            id=deterministic_id(*payload.identity(org_id, subject, occasion)),
            correlation_id=correlation_id,
        )

    def causes(self, payload: Payload, *, version: int) -> "Event":
        """The event this one causes in its org, with its correlation id; `payload` may derive its
        id from this event's (the occasion)."""
        event = Event.of(
            payload, org_id=self.org_id, org_slug=self.org_slug, version=version, occasion=self.id,
            correlation_id=self.correlation_id,
        )  # fmt: skip
        return event.following(self)

    def following(self, cause: "Event") -> "Event":
        """This event with its chain's `causetime`: the cause's own, or the cause's time if it started the chain."""
        return replace(self, cause_time=cause.cause_time or cause.time)

    @property
    def type(self) -> str:
        return self.kind.type

    @property
    def payload(self) -> Payload:
        """The typed payload of `data`."""
        from events.catalogue import PAYLOAD_OF

        return PAYLOAD_OF[self.kind].from_data(self.data)

    def to_cloudevent(self) -> dict[str, Any]:
        ce: dict[str, Any] = {
            "specversion": SPECVERSION,
            "id": self.id,
            "source": f"/provisioner/orgs/{self.org_id}",
            "type": self.kind.type,
            "subject": self.subject,
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json",
            "dataschema": f"{SCHEMA_BASE}{self.kind.schema}",
            "orgid": self.org_id,
            "orgslug": self.org_slug,
            "partitionkey": self.key,
            "data": self.data,
        }
        if self.resource_version != UNVERSIONED:
            ce["resourceversion"] = self.resource_version
        if self.correlation_id:
            ce["correlationid"] = self.correlation_id
        if self.cause_time is not None:
            ce["causetime"] = self.cause_time.isoformat().replace("+00:00", "Z")
        return ce


def encode(event: Event) -> bytes:
    return orjson.dumps(event.to_cloudevent())


def decode(raw: bytes) -> Event:
    """Parse a structured CloudEvent; anything malformed raises EnvelopeError."""
    try:
        ce = orjson.loads(raw)
        kind = _by_type()[ce["type"]]
        if ce.get("specversion") != SPECVERSION:
            raise EnvelopeError(f"unsupported specversion {ce.get('specversion')!r}")
        return Event(
            kind=kind,
            org_id=ce["orgid"],
            org_slug=ce.get("orgslug", ""),
            subject=ce["subject"],
            key=ce["partitionkey"],
            resource_version=_version(ce.get("resourceversion")),
            data=dict(ce["data"]),
            id=str(ce["id"]),
            time=datetime.fromisoformat(ce["time"].replace("Z", "+00:00")),
            correlation_id=ce.get("correlationid"),
            cause_time=datetime.fromisoformat(ce["causetime"].replace("Z", "+00:00")) if ce.get("causetime") else None,
        )
    except EnvelopeError:
        raise
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise EnvelopeError(f"not a provisioner CloudEvent: {exc!r}") from exc


def _version(value: object) -> int:
    """`resourceversion` as read: absent is UNVERSIONED; a value past 32 bits is one an older release
    stamped on an org-level fact (its time in microseconds), which is no resource version either."""
    if value is None:
        return UNVERSIONED
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EnvelopeError(f"resourceversion must be a non-negative integer, not {value!r}")
    return value if value <= INTEGER_MAX else UNVERSIONED


@cache  # looked up once, on the first decode: the catalogue is loaded by then
def _by_type() -> dict[str, "EventType"]:
    from events.catalogue import BY_TYPE

    return BY_TYPE
