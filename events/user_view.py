"""The member-facing view of a SCIM user that user lifecycle events carry (`user.*` payloads):
computed from the stored SCIM JSON by the ingest when it writes, and by `provisioner reconcile`
when it repairs a member from the stored resource."""

from typing import Any

Snapshot = dict[str, Any]


def primary_email(data: Snapshot) -> str | None:
    """The primary email, else the work one, else the first with a value."""
    emails = data.get("emails") or []
    for pick in (
        lambda e: e.get("primary") is True,
        lambda e: e.get("type") == "work",
        lambda e: True,
    ):
        for email in emails:
            if email.get("value") and pick(email):
                return str(email["value"])
    return None


def user_snapshot(user_id: str, data: Snapshot) -> Snapshot:
    """The fields of a `user.*` payload, from a SCIM User resource's JSON."""
    name = data.get("name") or {}
    return {
        "user_id": user_id,
        "user_name": data.get("userName"),
        "external_id": data.get("externalId"),
        "display_name": data.get("displayName") or name.get("formatted"),
        "given_name": name.get("givenName"),
        "family_name": name.get("familyName"),
        "email": primary_email(data),
        "active": data.get("active") is not False,
    }
