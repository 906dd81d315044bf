"""`provisioner org|service-token|admin-token ...`: create orgs and issue the credentials that reach them."""

import json
from typing import Annotated

import typer

from cli._common import echo_fields, fail, load_settings
from core.db import make_engine
from domain import orgs, token_expiry

org_app = typer.Typer(no_args_is_help=True, help="Organisations and their SCIM credentials.")
service_token_app = typer.Typer(no_args_is_help=True, help="Service tokens for the internal API.")
admin_token_app = typer.Typer(no_args_is_help=True, help="Org admins' tokens for the admin API and console.")


@org_app.command("create")
def org_create(
    slug: str, name: str = typer.Option(None, help="Display name"), as_json: bool = typer.Option(False, "--json")
) -> None:
    """Create an org and print its SCIM base URL and bearer token (shown once)."""
    settings = load_settings()
    try:
        org, token = orgs.create(make_engine(settings), slug, name, topics=settings.topics())
    except orgs.OrgError as exc:
        fail(str(exc))
    scim_base_url = orgs.scim_base_url(settings.public_url, org.slug)
    out = {"id": org.id, "slug": org.slug, "scim_base_url": scim_base_url, "scim_token": token}
    echo_fields(out, as_json)


@org_app.command("rotate-token")
def org_rotate_token(
    slug: str,
    expires_in_days: int | None = typer.Option(None, "--expires-in-days", help="The new token stops after this many days."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Issue a new SCIM token; the old ones keep working for the configured overlap. With
    --expires-in-days, the new one ends then (the org gets `credential.expiring` some days before)."""
    settings = load_settings()
    try:
        lifetime = token_expiry.lifetime(expires_in_days)
        token = orgs.rotate_token(make_engine(settings), slug, settings.token_overlap_seconds, topics=settings.topics(),
                                  lifetime=lifetime)
    except (orgs.OrgError, ValueError) as exc:
        fail(str(exc))
    out = {"slug": slug, "scim_token": token, "previous_tokens_valid_for_seconds": settings.token_overlap_seconds,
           "expires_in_days": expires_in_days}
    echo_fields(out, as_json)


def _toggle(value: str | None, name: str) -> bool | None:
    """`on`/`off` as True/False; None (not given) leaves the toggle as it is."""
    if value is None:
        return None
    if value.lower() not in ("on", "off"):
        fail(f"--{name} takes on or off")
    return value.lower() == "on"


@org_app.command("settings")
def org_settings(
    slug: str,
    manual_provisioning: str = typer.Option(None, "--manual-provisioning", help="on|off"),
    sso_provisioning: str = typer.Option(None, "--sso-provisioning", help="on|off"),
    scim: str = typer.Option(None, "--scim", help="on|off"),
    seat_limit: int = typer.Option(None, "--seat-limit", min=0, help="Billed seats the plan includes"),
    no_seat_limit: bool = typer.Option(False, "--no-seat-limit", help="Remove the seat limit"),
    seat_policy: str = typer.Option(None, "--seat-policy", help="refuse|allow: what a sign-in past the limit does"),
    remove_sso_members: bool = typer.Option(
        False, "--remove-sso-members", help="With --sso-provisioning off: remove the members SSO created (seats released)"
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show or change an org's provisioning toggles and seat limit."""
    from domain import admin
    from domain.postgres import SqlUnitOfWork

    settings = load_settings()
    engine = make_engine(settings)
    try:
        with SqlUnitOfWork.begin(engine, settings.topics()) as uow:
            # The org is looked up before the toggles are parsed: an unknown org is reported first.
            org = orgs.get(uow.conn, slug)
            changes: dict[str, object] = {
                "manual_provisioning": _toggle(manual_provisioning, "manual-provisioning"),
                "sso_provisioning": _toggle(sso_provisioning, "sso-provisioning"),
                "scim_enabled": _toggle(scim, "scim"),
                "seat_policy": seat_policy,
            }
            if seat_limit is not None and no_seat_limit:
                fail("--seat-limit and --no-seat-limit exclude each other")
            if seat_limit is not None or no_seat_limit:
                changes["seat_limit"] = seat_limit
            if remove_sso_members and changes["sso_provisioning"] is not False:
                fail("--remove-sso-members needs --sso-provisioning off")
            org = admin.change_settings(uow, org, "cli", **changes)
            if remove_sso_members:
                admin.remove_sso_members(uow, org, "cli")
    except (orgs.OrgError, admin.AdminError) as exc:
        fail(str(exc))
    out = {
        "slug": org.slug,
        "manual_provisioning": org.manual_provisioning,
        "sso_provisioning": org.sso_provisioning,
        "scim": org.scim_enabled,
        "seat_limit": org.seat_limit,
        "seat_policy": org.seat_policy,
    }
    echo_fields(out, as_json)


@org_app.command("health")
def org_health(
    slug: Annotated[str | None, typer.Argument(help="One org; without it, every org that is not healthy")] = None,
    state: str = typer.Option(None, help="With no SLUG: only orgs in this state (e.g. failing_auth)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Is an org's IdP still syncing (state, last success, last failure, token use); or which orgs are not."""
    from datetime import UTC, datetime, timedelta

    from domain import idp_health

    settings = load_settings()
    limits = {"window": timedelta(seconds=settings.idp_health_window_seconds),
              "usual_default": timedelta(seconds=settings.idp_health_usual_seconds)}  # fmt: skip
    if state is not None and state not in idp_health.STATES:
        fail(f"--state must be one of {', '.join(idp_health.STATES)}")
    now = datetime.now(UTC)
    with make_engine(settings).connect() as conn:
        if slug is not None:
            try:
                org = orgs.get(conn, slug)
            except orgs.OrgError as exc:
                fail(str(exc))
            warning = timedelta(days=settings.scim_token_warning_days)
            report = idp_health.report(conn, org.id, org.scim_enabled, now, **limits, token_warning=warning)
            typer.echo(json.dumps(report) if as_json else "\n".join(f"{k}: {v}" for k, v in report.items()))
            return
        found = idp_health.org_states(conn, now, **limits)
    wanted = [(s, st, h) for s, st, h in found if (st == state if state else st not in ("healthy", "disabled"))]
    for found_slug, found_state, h in wanted:
        shown = idp_health.view(h, found_state)
        typer.echo(json.dumps({"org": found_slug, **shown}) if as_json else
                   f"{found_slug}\t{found_state}\tlast success {shown['last_success_at']}\t"
                   f"last auth failure {shown['last_auth_failure_at']}\tlast failure {shown['last_failure_at']}")  # fmt: skip


@service_token_app.command("create")
def service_token_create(
    name: str = typer.Option("app", help="Who uses it"),
    org: Annotated[list[str] | None, typer.Option("--org", help="Scope it to this org (repeatable); none: every org")] = None,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Issue a service token for the internal API (shown once), optionally scoped to some orgs."""
    from domain import service_tokens

    try:
        token = service_tokens.create(make_engine(load_settings()), name, org or None)
    except service_tokens.ServiceTokenError as exc:
        fail(str(exc))
    typer.echo(json.dumps({"token": token, "name": name, "orgs": org or None}) if as_json else token)


@admin_token_app.command("create")
def admin_token_create(slug: str, name: str = typer.Option("admin"), as_json: bool = typer.Option(False, "--json")) -> None:
    """Issue an org admin token (admin API and console; shown once)."""
    from domain import admin

    try:
        settings = load_settings()
        token = admin.create_admin_token(make_engine(settings), slug, name, topics=settings.topics())
    except orgs.OrgError as exc:
        fail(str(exc))
    typer.echo(json.dumps({"slug": slug, "token": token}) if as_json else token)
