"""The base of every event's payload: a frozen dataclass that declares its subject, key and id."""

from dataclasses import fields
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

if TYPE_CHECKING:
    from events.catalogue import EventType


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
