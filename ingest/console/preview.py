"""The console's SCIM preview card (shown on the Provisioning page) and its two actions."""

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from domain import admin, preview
from ingest.console.session import PREFIX, Session
from ingest.console.web import Console


def card(conn: Any, session: Session) -> dict[str, Any]:
    return preview.report(conn, session.org, sample=5)


def start(console: Console, request: Request, session: Session, form: dict[str, str]) -> Response:
    """POST /console/scim/preview: hold the org's changes from now, and show what going live would do."""
    try:
        with console.unit_of_work() as uow:
            preview.start(uow.conn, session.org, session.actor)
    except admin.AdminError as exc:
        return console.flash(session, PREFIX, kind="error", text=_sentence(str(exc)))
    return console.flash(session, PREFIX, kind="ok", text="SCIM is in preview: changes are held until you go live.")


def go_live(console: Console, request: Request, session: Session, form: dict[str, str]) -> Response:
    """POST /console/scim/go-live: apply the held changes, in order."""
    try:
        with console.unit_of_work() as uow:
            released = preview.go_live(uow.conn, session.org)
    except admin.AdminError as exc:
        return console.flash(session, PREFIX, kind="error", text=_sentence(str(exc)))
    changes = f"{released.events} held change{'' if released.events == 1 else 's'}"
    return console.flash(session, PREFIX, kind="ok", text=f"SCIM is live: {changes} applied in order.")


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + "."
