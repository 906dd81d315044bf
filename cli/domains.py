"""`provisioner domains add|verify|list`: an org's email domains, proved with a DNS TXT record (or by support)."""

from typing import Any

import typer

from cli._common import echo_fields, echo_rows, fail, load_settings
from core.db import make_engine
from domain import orgs

domains_app = typer.Typer(no_args_is_help=True, help="Email domains an org has verified: it may acquire accounts on those only.")


def _shown(slug: str, domain: dict[str, Any]) -> dict[str, Any]:
    record = domain["record"]
    out = {"slug": slug, "domain": domain["domain"], "status": domain["status"]}
    if domain["status"] == "verified":
        out |= {"method": domain["method"], "verified_at": domain["verified_at"], "verified_by": domain["verified_by"]}
    else:
        out |= {"record_type": record["type"], "record_name": record["name"], "record_value": record["value"]}
    return out


@domains_app.command("add")
def domains_add(
    slug: str,
    domain: str,
    verified: bool = typer.Option(
        False, "--verified", help="Support's override: mark it verified at once, without DNS (audited)."
    ),
    actor: str = typer.Option("cli", "--actor", help="Who does it, for the audit trail (e.g. support:alice)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Claim an email domain for an org and print the DNS TXT record that proves it."""
    from domain import admin, domains
    from domain.postgres import SqlUnitOfWork

    settings = load_settings()
    try:
        with SqlUnitOfWork.begin(make_engine(settings), settings.topics()) as uow:
            shown = domains.add(uow, orgs.get(uow.conn, slug), domain, actor, verified=verified)
    except (orgs.OrgError, admin.AdminError) as exc:
        fail(str(exc))
    out = _shown(slug, shown)
    if not as_json:
        out["next"] = (
            f"{shown['domain']} is verified: this org may acquire accounts on it."
            if shown["status"] == "verified"
            else f"publish the TXT record, then run: provisioner domains verify {slug} {shown['domain']}"
        )
    echo_fields(out, as_json)


@domains_app.command("verify")
def domains_verify(
    slug: str,
    domain: str,
    actor: str = typer.Option("cli", "--actor", help="Who does it, for the audit trail."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Look the domain's TXT record up in DNS (the configured nameservers) and mark it verified when it matches."""
    from domain import admin, domains
    from domain.postgres import SqlUnitOfWork

    settings = load_settings()
    try:
        with SqlUnitOfWork.begin(make_engine(settings), settings.topics()) as uow:
            shown = domains.verify(uow, orgs.get(uow.conn, slug), domain, actor, domains.resolver(settings))
    except (orgs.OrgError, admin.AdminError) as exc:
        fail(str(exc))
    echo_fields(_shown(slug, shown), as_json)


@domains_app.command("list")
def domains_list(slug: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """An org's domains: verified ones with how, pending ones with the TXT record to publish."""
    from domain import domains

    with make_engine(load_settings()).connect() as conn:
        try:
            org = orgs.get(conn, slug)
        except orgs.OrgError as exc:
            fail(str(exc))
        rows = domains.list_domains(conn, org)

    def line(d: Any) -> str:
        if d["status"] == "verified":
            return f"{d['domain']}\tverified\t{d['method']}\t{d['verified_at']}"
        return f"{d['domain']}\tpending\t{d['record']['name']}\tTXT\t{d['record']['value']}"

    echo_rows(rows, as_json, line)
