"""`provisioner members|accounts|conflicts ...`: an org's people, the SaaS's own accounts, and the clashes between them."""

import json

import typer

from cli._common import ALL, CURSOR, LIMIT, echo_pages, fail, load_settings
from core import cursors
from core.db import make_engine
from domain import orgs

members_app = typer.Typer(no_args_is_help=True, help="An org's members, as the membership worker applied them.")
accounts_app = typer.Typer(no_args_is_help=True, help="The SaaS's accounts outside any org.")
conflicts_app = typer.Typer(no_args_is_help=True, help="Email conflicts between members and existing accounts.")


@members_app.command("add")
def members_add(slug: str, email: str, name: str = typer.Option(None, help="Display name")) -> None:
    """Add a person by hand (only while the org's manual provisioning is on)."""
    from domain import admin
    from domain.postgres import SqlUnitOfWork

    settings = load_settings()
    try:
        with SqlUnitOfWork.begin(make_engine(settings), settings.topics()) as uow:
            event = admin.add_member(uow, orgs.get(uow.conn, slug), "cli", email, name)
    except (orgs.OrgError, admin.AdminError) as exc:
        fail(str(exc))
    typer.echo(json.dumps({"email": email, "member_id": event.data["member_id"], "event_id": event.id, "status": "accepted"}))


@members_app.command("remove")
def members_remove(slug: str, member_id: str) -> None:
    """Remove a member added by hand or just in time by SSO (its billed seat is released)."""
    from domain import admin
    from domain.postgres import SqlUnitOfWork

    settings = load_settings()
    try:
        with SqlUnitOfWork.begin(make_engine(settings), settings.topics()) as uow:
            event_id = admin.remove_member(uow, orgs.get(uow.conn, slug), "cli", member_id)
    except (orgs.OrgError, admin.AdminError) as exc:
        fail(str(exc))
    typer.echo(json.dumps({"member_id": member_id, "event_id": event_id, "status": "accepted"}))


@members_app.command("list")
def members_list(
    slug: str,
    as_json: bool = typer.Option(False, "--json"),
    status: str = typer.Option(None, help="Only members with this status"),
    search: str = typer.Option(None, "--search", help="Only members whose email, user name or name contains this"),
    include_removed: bool = typer.Option(False, "--include-removed", help="Include removed members"),
    limit: int = LIMIT,
    cursor: str = CURSOR,
    stream_all: bool = ALL,
) -> None:
    """List an org's members with email, status and source, a page at a time (oldest first)."""
    from domain.members import SHOWN_STATUSES, check_search, page_members

    if status is not None and status not in SHOWN_STATUSES:
        fail(f"--status must be one of {', '.join(SHOWN_STATUSES)}")
    try:
        term = check_search(search)
    except ValueError as exc:
        fail(f"--search: {exc}")
    engine = make_engine(load_settings())
    with engine.connect() as conn:
        try:
            org = orgs.get(conn, slug)
        except orgs.OrgError as exc:
            fail(str(exc))

        def fetch(after: str | None, size: int) -> cursors.Page:
            return page_members(
                conn, org.id, status=status, search=term, include_removed=include_removed, limit=size, after=after
            )

        echo_pages(
            fetch, limit=limit, cursor=cursor, stream_all=stream_all, as_json=as_json,
            line=lambda m: f"{m['email'] or m['user_name']}\t{m['status']}\t{m['source']}",
        )  # fmt: skip


@members_app.command("erase")
def members_erase(
    slug: str,
    member_id: str,
    actor: str = typer.Option("cli", help="Who asked for the erasure (recorded in the member.erased event)"),
    yes: bool = typer.Option(False, "--yes", help="Erase without asking for confirmation"),
) -> None:
    """Erase a member's personal data (see docs/privacy.md); refused while the org's SCIM client still manages them."""
    from domain.erasure import ErasureError, erase
    from domain.postgres import SqlUnitOfWork

    if not yes and not typer.confirm(f"Erase the personal data of member {member_id} of {slug}? This cannot be undone"):
        fail("nothing was erased (not confirmed)")
    settings = load_settings()
    try:
        with SqlUnitOfWork.begin(make_engine(settings), settings.topics()) as uow:
            erased = erase(uow, orgs.get(uow.conn, slug), member_id, actor)
    except (orgs.OrgError, ErasureError) as exc:
        fail(str(exc))
    typer.echo(json.dumps(erased.as_dict()))


@accounts_app.command("register")
def accounts_register(email: str, name: str = typer.Option(None, help="Display name")) -> None:
    """Register an account outside any org (as the app does when someone signs up)."""
    from domain.accounts import AccountError, register
    from domain.postgres import SqlUnitOfWork

    settings = load_settings()
    try:
        with SqlUnitOfWork.begin(make_engine(settings), settings.topics()) as uow:
            result = register(uow, email, name)
    except AccountError as exc:
        fail(str(exc))
    typer.echo(json.dumps({**result.account, "created": result.created}))


@conflicts_app.command("list")
def conflicts_list(
    slug: str,
    status: str = typer.Option("open", help="open, acquired, dismissed or all"),
    as_json: bool = typer.Option(False, "--json"),
    limit: int = LIMIT,
    cursor: str = CURSOR,
    stream_all: bool = ALL,
) -> None:
    """List an org's email conflicts, a page at a time (oldest first)."""
    from domain import admin

    if status not in ("open", "acquired", "dismissed", "all"):
        fail("--status must be one of open, acquired, dismissed, all")
    with make_engine(load_settings()).connect() as conn:
        try:
            org = orgs.get(conn, slug)
        except orgs.OrgError as exc:
            fail(str(exc))

        def fetch(after: str | None, size: int) -> cursors.Page:
            return admin.page_conflicts(conn, org, None if status == "all" else status, limit=size, after=after)

        echo_pages(
            fetch, limit=limit, cursor=cursor, stream_all=stream_all, as_json=as_json,
            line=lambda item: f"{item['email']}\t{item['status']}\t{item['error']}",
        )  # fmt: skip


def _settle(slug: str, key: str, action: str) -> None:
    """Acquire, dismiss or invite on one conflict (by email or id) and print the outcome."""
    from domain import admin
    from domain.postgres import SqlUnitOfWork

    settings = load_settings()
    try:
        with SqlUnitOfWork.begin(make_engine(settings), settings.topics()) as uow:
            org = orgs.get(uow.conn, slug)
            if action == "invite":
                result = admin.invite(uow, org, "cli", key)
            else:
                result = admin.resolve(uow, org, "cli", key, acquire=action == "acquire")
    except (orgs.OrgError, admin.AdminError) as exc:
        fail(str(exc))
    typer.echo(json.dumps(result))


@conflicts_app.command("acquire")
def conflicts_acquire(slug: str, email_or_id: str) -> None:
    """Acquire the existing account into the org: it becomes the member."""
    _settle(slug, email_or_id, "acquire")


@conflicts_app.command("invite")
def conflicts_invite(slug: str, email_or_id: str) -> None:
    """Invite the person behind the conflict's account: the app asks them, and their consent makes
    the account the member (for accounts the org may not acquire)."""
    _settle(slug, email_or_id, "invite")


@conflicts_app.command("dismiss")
def conflicts_dismiss(slug: str, email_or_id: str) -> None:
    """Dismiss a conflict: the member stays, the account stays outside the org."""
    _settle(slug, email_or_id, "dismiss")
