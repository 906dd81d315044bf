"""Console pages of a signed-in admin: the Provisioning settings, the user list, conflicts and a member's activity.

Every action goes through `domain.admin`, the same service layer as the admin API and the CLI.
"""

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from domain import admin, domains, idp_health, orgs, token_expiry
from domain.members import SEARCH_MAX, count_members, get_member, page_members
from domain.model import CONFLICT, MemberStatus, Source, seats_in_use
from ingest.console import guides
from ingest.console import preview as console_preview
from ingest.console import sso as console_sso
from ingest.console.session import PREFIX, Session, flash_of
from ingest.console.web import Console

TOGGLES = (
    (
        "manual_provisioning",
        "Manual provisioning",
        "Allow admins to add users by hand on the Users page.",
    ),
    (
        "sso_provisioning",
        "Provisioning through SSO",
        "Add people to the organization as soon as they sign in through your identity provider (just-in-time).",
    ),
    (
        "scim_enabled",
        "Provisioning through SCIM",
        "Let your identity provider push users and groups over SCIM 2.0, the IETF standard.",
    ),
)
TOGGLE_LABELS = {name: label for name, label, _ in TOGGLES}

# in the order the users page offers them as filters
STATUS_LABELS = {
    MemberStatus.PROVISIONED: "Provisioned",
    MemberStatus.ACTIVE: "Active",
    MemberStatus.DEACTIVATED: "Deactivated",
    CONFLICT: "Conflict",
    MemberStatus.REMOVED: "Removed",
}
HEALTH_LABELS = {
    "healthy": "Healthy: your identity provider is syncing.",
    "quiet": "Quiet: no request from your identity provider for longer than its usual interval. "
    "Check that provisioning is still on there.",
    "failing_auth": "Failing authentication: your identity provider sends a token that is revoked, expired or not "
    "this organization's. Rotate the token and paste the new one.",
    "failing_requests": "Failing requests: your identity provider's requests fail with server errors or are rate limited.",
    "not_connected": "Not connected: no successful request from an identity provider yet.",
    "disabled": "SCIM is disabled.",
}
SOURCE_LABELS = {Source.SCIM: "SCIM", Source.SSO: "SSO", Source.MANUAL: "Manual", Source.APP: "App"}
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


# -- provisioning settings -------------------------------------------------------------------


def settings_page(console: Console, request: Request, session: Session, form: dict[str, str]) -> Response:
    """GET /console: the three provisioning toggles, SCIM details while SCIM is on, open conflicts
    and the org's email domains (verified, or pending with the TXT record to publish)."""
    flash = flash_of(request, session)
    with console.unit_of_work() as uow:
        open_conflicts = admin.count_open_conflicts(uow.conn, session.org)
        org_domains = domains.list_domains(uow.conn, session.org)
        in_use = seats_in_use(uow, session.org.id)
        sso = console_sso.card(console, uow.conn, session)
        scim_preview = console_preview.card(uow.conn, session)
        health = idp_health.report(
            uow.conn, session.org.id, session.org.scim_enabled, datetime.now(UTC),
            window=timedelta(seconds=console.settings.idp_health_window_seconds),
            usual_default=timedelta(seconds=console.settings.idp_health_usual_seconds),
            token_warning=timedelta(days=console.settings.scim_token_warning_days),
        )  # fmt: skip
    values = admin.settings_of(session.org)
    base_url = orgs.scim_base_url(console.settings.public_url, session.org.slug)
    idp = guides.IDPS.get(request.query_params.get("idp", ""), guides.IDPS["entra-id"])
    toggles = [
        {
            "name": name,
            "label": label,
            "description": description,
            "on": values[name],
            "state": _toggle_state(name, values[name]),
        }
        for name, label, description in TOGGLES
    ]
    page = console.page(
        request,
        "settings.html",
        session,
        toggles=toggles,
        open_conflicts=open_conflicts,
        domains=org_domains,
        seats={"limit": values["seat_limit"], "policy": values["seat_policy"], "in_use": in_use},
        notice=flash if flash and not flash.get("token") else None,  # a new token is shown by the SCIM details
        new_token=flash.get("token") if flash else None,
        base_url=base_url,
        overlap=_duration(console.settings.token_overlap_seconds),
        health={**health, "label": HEALTH_LABELS[health["state"]],
                "last_success": _when(health["last_success_at"]) if health["last_success_at"] else "never"},
        sso=sso,
        preview=scim_preview,
        idp=idp,
        idp_options=[(key, entry.label) for key, entry in guides.IDPS.items()],
        idp_fields=guides.fields_for(idp, base_url, flash.get("token") if flash else None),
    )
    return console.shown(request, page)


def guide_page(console: Console, request: Request, session: Session, form: dict[str, str]) -> Response:
    """GET /console/guides/{idp}: an IdP setup guide (docs/idp/), as a console page."""
    found = guides.rendered(request.path_params["idp"], PREFIX)
    if found is None:
        return console.error_page(request, session, 404, "There is no such setup guide.")
    title, body = found
    return console.page(request, "guide.html", session, title=title, body=body)


def _toggle_state(name: str, on: bool) -> str:
    # SCIM is "Enabled"/"Disabled", the other two "On"/"Off", as in the settings panel this mirrors.
    if name == "scim_enabled":
        return "Enabled" if on else "Disabled"
    return "On" if on else "Off"


def change_setting(console: Console, request: Request, session: Session, form: dict[str, str]) -> Response:
    """POST /console/settings: flip one toggle."""
    name, value = form.get("setting", ""), form.get("value", "")
    if name not in TOGGLE_LABELS or value not in ("on", "off"):
        return console.error_page(request, session, 400, "Unknown setting or value; use the toggles on the Provisioning page.")
    try:
        with console.unit_of_work() as uow:
            admin.change_settings(uow, session.org, session.actor, **{name: value == "on"})
    except admin.AdminError as exc:
        return console.flash(session, PREFIX, kind="error", text=_capitalise(str(exc)))
    state = ("enabled" if value == "on" else "disabled") if name == "scim_enabled" else value
    return console.flash(session, PREFIX, kind="ok", text=f"{TOGGLE_LABELS[name]} is now {state}.")


def change_seats(console: Console, request: Request, session: Session, form: dict[str, str]) -> Response:
    """POST /console/seats: the seat limit (blank: no limit) and what a sign-in past it does."""
    raw, policy = form.get("seat_limit", "").strip(), form.get("seat_policy", "")
    if raw and not raw.isdigit():
        return console.flash(session, PREFIX, kind="error", text="The seat limit is a whole number of seats, or blank for none.")
    try:
        with console.unit_of_work() as uow:
            admin.change_settings(uow, session.org, session.actor, seat_limit=int(raw) if raw else None, seat_policy=policy)
    except admin.AdminError as exc:
        return console.flash(session, PREFIX, kind="error", text=_capitalise(str(exc)))
    limit = f"{int(raw)} seats" if raw else "no seat limit"
    return console.flash(session, PREFIX, kind="ok", text=f"Seats saved: {limit}.")


def rotate(console: Console, request: Request, session: Session, form: dict[str, str]) -> Response:
    """POST /console/scim/rotate: a new SCIM token, shown once on the next page."""
    if not session.org.scim_enabled:
        return console.flash(session, PREFIX, kind="error", text="Enable Provisioning through SCIM before rotating its token.")
    overlap, days = console.settings.token_overlap_seconds, form.get("expires_in_days", "")
    try:
        lifetime = token_expiry.lifetime(int(days)) if days else None
    except ValueError:  # a value the form's select never offers
        return console.flash(session, PREFIX, kind="error", text="The token was not rotated: choose its lifetime from the list.")
    token = orgs.rotate_token(console.engine, session.org.slug, overlap, topics=console.settings.topics(),
                              actor=session.actor, lifetime=lifetime)
    back = PREFIX + ("?" + urlencode({"idp": form["idp"]}) if form.get("idp") in guides.IDPS else "")
    return console.flash(session, back, kind="ok", text="A new SCIM bearer token was issued.", token=token)


# -- users -----------------------------------------------------------------------------------


CONSOLE_PAGE = 50  # users per page


def users_page(console: Console, request: Request, session: Session, form: dict[str, str]) -> Response:
    """GET /console/users: the members a page at a time, filtered by status, searched by email or name."""
    flash = flash_of(request, session)
    query = request.query_params
    status, search, errors = query.get("status", ""), query.get("q", "").strip(), []
    if status and status not in STATUS_LABELS:
        errors.append(f"There is no status {status!r}; showing all users.")
        status = ""
    if len(search) > SEARCH_MAX:
        errors.append(f"A search is at most {SEARCH_MAX} characters; showing all users.")
        search = ""
    notice = {"kind": "error", "text": " ".join(errors)} if errors else flash
    page = _users(
        console, request, session, status=status, search=search, after=query.get("after"), before=query.get("before"),
        notice=notice, http_status=400 if errors else 200,
    )  # fmt: skip
    return console.shown(request, page)


def _users(
    console: Console,
    request: Request,
    session: Session,
    *,
    status: str = "",
    search: str = "",
    after: str | None = None,
    before: str | None = None,
    notice: dict[str, Any] | None = None,
    email: str = "",
    name: str = "",
    http_status: int = 200,
) -> Response:
    with console.engine.connect() as conn:
        counts = count_members(conn, session.org.id)
        try:
            found = page_members(
                conn, session.org.id, status=status or None, search=search, limit=CONSOLE_PAGE, after=after, before=before
            )
        except ValueError:  # a page link from another list or an old release: the first page, and why
            notice, http_status = {"kind": "error", "text": "That page link is not valid here; showing the first page."}, 400
            found = page_members(conn, session.org.id, status=status or None, search=search, limit=CONSOLE_PAGE)
    total = sum(n for key, n in counts.items() if key != MemberStatus.REMOVED)
    listed = counts[status] if status else total

    def link(**cursor: str) -> str:
        return f"{PREFIX}/users?" + urlencode({k: v for k, v in {"status": status, "q": search, **cursor}.items() if v})

    return console.page(
        request,
        "users.html",
        session,
        status=http_status,
        notice=notice,
        filter_status=status,
        search=search,
        status_options=[("", f"All users ({total:,})"), *((k, f"{v} ({counts[k]:,})") for k, v in STATUS_LABELS.items())],
        rows=[_user_row(row) for row in found.rows],
        empty=_empty(status, search),
        count=f"matching {search!r}" if search else f"{listed:,} user{'' if listed == 1 else 's'}",
        next_page=link(after=found.next) if found.next else "",
        previous_page=link(before=found.previous) if found.previous else "",
        email=email,
        name=name,
    )


def _empty(status: str, search: str) -> str:
    if search:
        return f"No users{' with the status ' + STATUS_LABELS[status] if status else ''} match {search!r}."
    return f"No users with the status {STATUS_LABELS[status]}." if status else "No users yet."


def _user_row(row: dict[str, Any]) -> dict[str, Any]:
    """What a row of the user list shows: the email goes under the name only when there is a name."""
    shown = _member(row)
    return {
        **shown,
        "email": (row.get("email") or "") if shown["name"] != row.get("email") else "",
        "conflict_id": row["conflict_id"] if row["status"] == CONFLICT else None,
        "error": row.get("error") or "",
        "first_login": _when(row["first_login_at"]) if row.get("first_login_at") else "",
    }


def add_user(console: Console, request: Request, session: Session, form: dict[str, str]) -> Response:
    """POST /console/users: a manual add (refused while Manual provisioning is off); a refusal keeps the form."""
    email, name = form.get("email", "").strip(), form.get("display_name", "").strip()
    try:
        if len(name) > 256:
            raise admin.AdminError(400, "the name must be at most 256 characters")
        with console.unit_of_work() as uow:
            admin.add_member(uow, session.org, session.actor, email, name or None)
    except admin.AdminError as exc:
        message = _capitalise(str(exc)) + "."
        if exc.status == 403:
            message += " Turn on Manual provisioning under Provisioning to add users by hand."
        notice = {"kind": "error", "text": message}
        return _users(console, request, session, notice=notice, email=email, name=name, http_status=exc.status)
    return console.flash(
        session, f"{PREFIX}/users", kind="ok", text=f"{email} was added. They appear below as Provisioned within a few seconds."
    )


def resolve(console: Console, request: Request, session: Session, form: dict[str, str]) -> Response:
    """POST /console/conflicts/{id}/{acquire|dismiss}; back to the list as it was filtered."""
    conflict_id, action = request.path_params["conflict_id"], request.path_params["action"]
    back = f"{PREFIX}/users"
    if form.get("filter") in STATUS_LABELS:
        back += "?" + urlencode({"status": form["filter"]})
    if action not in ("acquire", "dismiss"):
        return console.error_page(request, session, 404, "Unknown action; use the Acquire or Dismiss buttons.")
    try:
        if not _UUID.match(conflict_id):
            raise admin.AdminError(404, "no open conflict with that id or email")
        with console.unit_of_work() as uow:
            result = admin.resolve(uow, session.org, session.actor, conflict_id, acquire=action == "acquire")
            email = (admin.conflict_of(uow.conn, session.org, result["id"]) or {}).get("email") or ""
    except admin.AdminError as exc:
        stale = " (it may have been resolved already)." if exc.status == 404 else ""  # else the refusal says why
        return console.flash(session, back, kind="error", text=_capitalise(str(exc)) + stale)
    text = (
        f"Acquired the existing account of {email}: it is now this member."
        if action == "acquire"
        else f"Dismissed the conflict for {email}."
    )
    return console.flash(session, back, kind="ok", text=text)


def member_page(console: Console, request: Request, session: Session, form: dict[str, str]) -> Response:
    """GET /console/users/{id}: one member of this org (removed ones too) and its recent activity."""
    member_id = request.path_params["member_id"]
    row = None
    if _UUID.match(member_id):
        with console.engine.connect() as conn:
            row = get_member(conn, session.org.id, member_id)
            activity = admin.member_activity_of(conn, session.org, member_id) if row else []
    if row is None:
        return console.error_page(request, session, 404, "There is no such user in this organization.")
    member = {
        **_member(row),
        "email": row.get("email") or "",
        "error": row.get("error") or "",
        "first_login": _when(row["first_login_at"]) if row.get("first_login_at") else "Not yet",
        "created": _when(row["created_at"]),
    }
    items = [
        {
            "iso": a["at"],
            "at": _when(a["at"]),
            "type": _event_label(a["type"]),
            "source": SOURCE_LABELS.get(a["source"], a["source"]),
        }
        for a in activity
    ]
    return console.page(request, "member.html", session, member=member, activity=items)


# -- wording ---------------------------------------------------------------------------------


def _member(row: dict[str, Any]) -> dict[str, Any]:
    """A member's id, name (or what stands in for it), source and status as the pages word them."""
    status = row["status"]
    return {
        "id": row["id"],
        "name": _name(row),
        "source": SOURCE_LABELS.get(row["source"], row["source"]),
        "status": status,
        "label": STATUS_LABELS.get(status, status.title()),
    }


def _name(row: dict[str, Any]) -> str:
    """The name the IdP sent (displayName, else given and family name), else the email or user name."""
    given = " ".join(part for part in (row.get("given_name"), row.get("family_name")) if part and part.strip())
    for candidate in (row.get("display_name"), given, row.get("email"), row.get("user_name")):
        if candidate and candidate.strip():
            return candidate.strip()
    return "(no name)"


def _capitalise(message: str) -> str:
    return message[:1].upper() + message[1:]


def _duration(seconds: int) -> str:
    """The token overlap in words: whole hours, else whole minutes, else seconds."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600} hour{'s' if seconds // 3600 != 1 else ''}"
    return f"{seconds // 60} minutes" if seconds % 60 == 0 else f"{seconds} seconds"


def _when(iso: str) -> str:
    """An ISO timestamp as `2024-05-01 14:03 UTC` (timestamps are stored in UTC)."""
    try:
        return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return iso


def _event_label(event_type: str) -> str:
    short = event_type.removeprefix("io.provisioner.")
    return short.replace(".", " ").replace("_", " ").capitalize()
