"""SCIM emails are kept as the client sent them: validated as addresses, never normalised.

scim2-models types `Email.value` as pydantic's `EmailStr`, which returns email-validator's
normalised form and so lower-cases the domain (`User15@BCheck.example` became
`User15@bcheck.example` in responses, the stored JSON and the events). RFC 7643 §8.7.1 declares
`emails.value` caseExact false: compared case-insensitively, not rewritten. So filters and
uniqueness compare case-insensitively (the `emails_ci` column, `ScimFilter.match`) and the value
stays as sent.
"""

from typing import Annotated, ClassVar

import email_validator
from pydantic import AfterValidator, ValidationInfo
from scim2_models import AnyExtension, ComplexAttribute
from scim2_models import Email as LibraryEmail
from scim2_models import User as LibraryUser

STORED = "provisioner_stored"  # validation context key: the data was checked when it was written


def as_sent(value: str | None, info: ValidationInfo) -> str | None:
    """The address as sent (surrounding blanks trimmed: they are no part of it); refused unless it
    is an email address by email-validator's rules (no DNS lookup). A stored resource being read
    back is not checked again (email-validator costs ~0.2 ms an address)."""
    if value is None:
        return None
    address = value.strip()
    if info.context and info.context.get(STORED):
        return address
    try:
        email_validator.validate_email(address, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise ValueError(f"value is not a valid email address: {exc}") from exc
    return address


class Email(LibraryEmail):
    """The library's email attribute, its value kept as sent."""

    value: Annotated[str | None, AfterValidator(as_sent)] = None
    """Email addresses for the user."""


class User(LibraryUser[AnyExtension]):  # generic like the library's: the provider binds the extensions
    """The library's core User (the same schema), its emails kept as sent."""

    emails: list[Email] | None = None  # type: ignore[assignment]
    """Email addresses for the user."""

    Emails: ClassVar[type[ComplexAttribute]] = Email
