"""The `provisioner` command: operate orgs, inspect members, run each process."""

import json

import typer

from core import orgs
from core.db import make_engine
from core.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Provisioner: SCIM/SSO provisioning pipeline.")
org_app = typer.Typer(no_args_is_help=True, help="Organisations and their SCIM credentials.")
members_app = typer.Typer(no_args_is_help=True, help="An org's members, as the membership worker applied them.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
topics_app = typer.Typer(no_args_is_help=True, help="Kafka topics.")
app.add_typer(org_app, name="org")
app.add_typer(members_app, name="members")
app.add_typer(db_app, name="db")
app.add_typer(topics_app, name="topics")


def _sso_app() -> typer.Typer:
    from ingest.sso.cli import sso_app

    return sso_app


app.add_typer(_sso_app(), name="sso")


def _settings() -> Settings:
    return Settings()


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@org_app.command("create")
def org_create(slug: str, name: str = typer.Option(None, help="Display name"), as_json: bool = typer.Option(False, "--json")) -> None:
    """Create an org and print its SCIM base URL and bearer token (shown once)."""
    settings = _settings()
    try:
        org, token = orgs.create(make_engine(settings), slug, name)
    except orgs.OrgError as exc:
        _fail(str(exc))
    out = {"id": org.id, "slug": org.slug, "scim_base_url": orgs.scim_base_url(settings.public_url, org.slug), "scim_token": token}
    typer.echo(json.dumps(out) if as_json else "\n".join(f"{k}: {v}" for k, v in out.items()))


@org_app.command("rotate-token")
def org_rotate_token(slug: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Issue a new SCIM token; the old ones keep working for the configured overlap."""
    settings = _settings()
    try:
        token = orgs.rotate_token(make_engine(settings), slug, settings.token_overlap_seconds)
    except orgs.OrgError as exc:
        _fail(str(exc))
    out = {"slug": slug, "scim_token": token, "previous_tokens_valid_for_seconds": settings.token_overlap_seconds}
    typer.echo(json.dumps(out) if as_json else "\n".join(f"{k}: {v}" for k, v in out.items()))


@members_app.command("add")
def members_add(slug: str, email: str, name: str = typer.Option(None, help="Display name")) -> None:
    """Add a person by hand (only while the org's manual provisioning is on)."""
    from core import admin

    settings = _settings()
    engine = make_engine(settings)
    try:
        with engine.begin() as conn:
            event_id = admin.add_member(conn, orgs.get(conn, slug), settings.topics(), "cli", email, name)
    except (orgs.OrgError, admin.AdminError) as exc:
        _fail(str(exc))
    typer.echo(json.dumps({"email": email, "event_id": event_id, "status": "accepted"}))


@members_app.command("list")
def members_list(
    slug: str,
    as_json: bool = typer.Option(False, "--json"),
    status: str = typer.Option(None, help="Only members with this status"),
    include_removed: bool = typer.Option(False, "--all", help="Include removed members"),
) -> None:
    """List an org's members with email, status and source."""
    from core.members import list_members

    engine = make_engine(_settings())
    with engine.connect() as conn:
        try:
            org = orgs.get(conn, slug)
        except orgs.OrgError as exc:
            _fail(str(exc))
        found = list_members(conn, org.id, status=status, include_removed=include_removed)
    if as_json:
        typer.echo(json.dumps(found))
    else:
        for m in found:
            typer.echo(f"{m['email'] or m['user_name']}\t{m['status']}\t{m['source']}")


service_token_app = typer.Typer(no_args_is_help=True, help="Service tokens for the internal API.")
app.add_typer(service_token_app, name="service-token")


@service_token_app.command("create")
def service_token_create(name: str = typer.Option("app", help="Who uses it"), as_json: bool = typer.Option(False, "--json")) -> None:
    """Issue a service token for the internal API (shown once)."""
    from core import service_tokens

    token = service_tokens.create(make_engine(_settings()), name)
    typer.echo(json.dumps({"token": token, "name": name}) if as_json else token)


@org_app.command("settings")
def org_settings(
    slug: str,
    manual_provisioning: str = typer.Option(None, "--manual-provisioning", help="on|off"),
    sso_provisioning: str = typer.Option(None, "--sso-provisioning", help="on|off"),
    scim: str = typer.Option(None, "--scim", help="on|off"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show or change an org's provisioning toggles."""

    def flag(value: str | None, name: str) -> bool | None:
        if value is None:
            return None
        if value.lower() not in ("on", "off"):
            _fail(f"--{name} takes on or off")
        return value.lower() == "on"

    from core import admin

    settings = _settings()
    engine = make_engine(settings)
    try:
        with engine.begin() as conn:
            org = admin.change_settings(
                conn,
                orgs.get(conn, slug),
                settings.topics(),
                "cli",
                manual_provisioning=flag(manual_provisioning, "manual-provisioning"),
                sso_provisioning=flag(sso_provisioning, "sso-provisioning"),
                scim_enabled=flag(scim, "scim"),
            )
    except (orgs.OrgError, admin.AdminError) as exc:
        _fail(str(exc))
    out = {
        "slug": org.slug,
        "manual_provisioning": org.manual_provisioning,
        "sso_provisioning": org.sso_provisioning,
        "scim": org.scim_enabled,
    }
    typer.echo(json.dumps(out) if as_json else "\n".join(f"{k}: {v}" for k, v in out.items()))


billing_app = typer.Typer(no_args_is_help=True, help="Billing events.")
app.add_typer(billing_app, name="billing")


@billing_app.command("verify")
def billing_verify(
    wait: float = typer.Option(30.0, help="Seconds to wait for events still in the outbox"),
    org: list[str] = typer.Option(None, "--org", help="Only these orgs (slugs); default all"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Check the billing topic against PostgreSQL's facts; exits 1 on any mismatch or duplicate."""
    from workers.billing_verify import verify_until_settled

    settings = _settings()
    engine = make_engine(settings)
    org_ids = None
    if org:
        with engine.connect() as conn:
            try:
                org_ids = [orgs.get(conn, slug).id for slug in org]
            except orgs.OrgError as exc:
                _fail(str(exc))
    report = verify_until_settled(settings, engine, wait, org_ids)
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
    else:
        for key, value in report.as_dict().items():
            typer.echo(f"{key}: {value}")
    raise typer.Exit(0 if report.clean and not report.pending else 1)


accounts_app = typer.Typer(no_args_is_help=True, help="The SaaS's accounts outside any org.")
conflicts_app = typer.Typer(no_args_is_help=True, help="Email conflicts between members and existing accounts.")
admin_token_app = typer.Typer(no_args_is_help=True, help="Org admins' tokens for the admin API and console.")
app.add_typer(accounts_app, name="accounts")
app.add_typer(conflicts_app, name="conflicts")
app.add_typer(admin_token_app, name="admin-token")


@accounts_app.command("register")
def accounts_register(email: str, name: str = typer.Option(None, help="Display name")) -> None:
    """Register an account outside any org (as the app does when someone signs up)."""
    from core.accounts import AccountError, register

    settings = _settings()
    try:
        with make_engine(settings).begin() as conn:
            result = register(conn, email, settings.topics(), name)
    except AccountError as exc:
        _fail(str(exc))
    typer.echo(json.dumps({**result.account, "created": result.created}))


@conflicts_app.command("list")
def conflicts_list(slug: str, status: str = typer.Option("open", help="open, acquired, dismissed or all"), as_json: bool = typer.Option(False, "--json")) -> None:
    """List an org's email conflicts."""
    from core import admin

    with make_engine(_settings()).connect() as conn:
        try:
            found = admin.list_conflicts(conn, orgs.get(conn, slug), None if status == "all" else status)
        except orgs.OrgError as exc:
            _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(found))
    else:
        for item in found:
            typer.echo(f"{item['email']}\t{item['status']}\t{item['error']}")


def _resolve(slug: str, key: str, acquire: bool) -> None:
    from core import admin

    settings = _settings()
    try:
        with make_engine(settings).begin() as conn:
            result = admin.resolve(conn, orgs.get(conn, slug), settings.topics(), "cli", key, acquire=acquire)
    except (orgs.OrgError, admin.AdminError) as exc:
        _fail(str(exc))
    typer.echo(json.dumps(result))


@conflicts_app.command("acquire")
def conflicts_acquire(slug: str, email_or_id: str) -> None:
    """Acquire the existing account into the org: it becomes the member."""
    _resolve(slug, email_or_id, acquire=True)


@conflicts_app.command("dismiss")
def conflicts_dismiss(slug: str, email_or_id: str) -> None:
    """Dismiss a conflict: the member stays, the account stays outside the org."""
    _resolve(slug, email_or_id, acquire=False)


@admin_token_app.command("create")
def admin_token_create(slug: str, name: str = typer.Option("admin"), as_json: bool = typer.Option(False, "--json")) -> None:
    """Issue an org admin token (admin API and console; shown once)."""
    from core import admin

    try:
        token = admin.create_admin_token(make_engine(_settings()), slug, name)
    except orgs.OrgError as exc:
        _fail(str(exc))
    typer.echo(json.dumps({"slug": slug, "token": token}) if as_json else token)


dlq_app = typer.Typer(no_args_is_help=True, help="Dead letters: records a worker set aside.")
app.add_typer(dlq_app, name="dlq")


@dlq_app.command("list")
def dlq_list(
    consumer: str = typer.Option(None, help="membership, billing or conflicts"),
    include_redriven: bool = typer.Option(False, "--all", help="Include redriven ones"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List dead letters with their error and origin (topic, partition, offset)."""
    from workers.dead_letters import list_dead_letters

    found = list_dead_letters(make_engine(_settings()), consumer, include_redriven)
    if as_json:
        typer.echo(json.dumps(found))
    else:
        for d in found:
            typer.echo(f"{d['id']}\t{d['consumer']}\t{d['topic']}[{d['partition']}]@{d['offset']}\t{d['error'][:120]}")


@dlq_app.command("redrive")
def dlq_redrive(consumer: str, ids: list[int] = typer.Argument(None, help="Dead letter ids (default: all of the consumer's)")) -> None:
    """Re-apply dead letters with the worker's current handler (after a fix); exit 1 if some fail again."""
    from workers.dead_letters import redrive

    settings = _settings()
    try:
        report = redrive(make_engine(settings), settings, consumer, ids or None)
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(json.dumps(report))
    raise typer.Exit(1 if report["failed"] else 0)


audit_app = typer.Typer(no_args_is_help=True, help="The SCIM audit trail.")
app.add_typer(audit_app, name="audit")


@audit_app.command("prune")
def audit_prune(
    days: int = typer.Option(None, min=1, help="Keep this many days (default: PROVISIONER_AUDIT_RETENTION_DAYS)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Delete SCIM audit rows older than the retention period (ingest also does it every hour)."""
    from ingest.audit import prune

    settings = _settings()
    keep = days or settings.audit_retention_days
    deleted = prune(make_engine(settings), keep, wait=True)
    typer.echo(json.dumps({"deleted": deleted, "retention_days": keep}) if as_json else f"deleted {deleted} rows older than {keep} days")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the schema migrations."""
    from core.migrate import upgrade

    upgrade(_settings())


@topics_app.command("create")
def topics_create() -> None:
    """Create the Kafka topics that are missing."""
    from events.kafka import ensure_topics

    created = ensure_topics(_settings())
    typer.echo(f"created: {', '.join(created) or 'none (all present)'}")


@app.command("serve")
def serve() -> None:
    """Run the ingest HTTP server (SCIM, health, metrics)."""
    import uvicorn

    settings = _settings()
    uvicorn.run(
        "ingest.app:app_from_env",
        factory=True,
        host=settings.http_host,
        port=settings.http_port,
        workers=settings.http_workers,
        log_level="warning",
        access_log=False,
    )


@app.command("relay")
def relay() -> None:
    """Run the outbox relay."""
    from events.main import run_relay

    run_relay(_settings())


@app.command("worker")
def worker(name: str = typer.Argument(..., help="membership, billing or conflicts")) -> None:
    """Run one worker of a consumer group."""
    from workers.main import WORKERS, run_worker

    if name not in WORKERS:
        _fail(f"unknown worker {name!r}; known: {', '.join(WORKERS)}")
    run_worker(name, _settings())


@app.command("run")
def run(roles: list[str] = typer.Argument(None, help="Roles to run (default: all)")) -> None:
    """Run ingest, the relay and every worker in the foreground; Ctrl-C stops all."""
    from core.supervisor import supervise

    raise typer.Exit(supervise(roles))


def main() -> None:
    from core.logs import configure

    configure(Settings())
    app()


if __name__ == "__main__":
    main()
