"""`provisioner admin-token|service-token list|revoke`, `org scim-tokens|revoke-scim-token`: every token by
its id and non-secret prefix, created and last used, and revoked now (e.g. after a leak)."""

from collections.abc import Mapping
from typing import Any

import typer

from cli._common import echo_fields, echo_rows, fail, load_settings
from cli.orgs import admin_token_app, org_app, service_token_app
from core.db import make_engine
from domain import orgs, tokens


def _line(row: Mapping[str, Any]) -> str:
    state = "revoked" if row["revoked_at"] else "expired" if not row["live"] else "live"
    scope = row.get("org_ids")
    extra = [f"orgs={','.join(scope)}"] if scope else []
    fields = [row["id"], row["prefix"], row["name"], state, row["created_at"], row["last_used_at"] or "never", *extra]
    return "\t".join(fields)


def _list(kind: str, slug: str | None, as_json: bool) -> None:
    with make_engine(load_settings()).connect() as conn:
        try:
            org_id = orgs.get(conn, slug).id if slug else None
        except orgs.OrgError as exc:
            fail(str(exc))
        echo_rows(tokens.listing(conn, kind, org_id), as_json, _line)


def _revoke(kind: str, token_id: str, slug: str | None, as_json: bool) -> None:
    """Revoke with the audit fact (admin and SCIM tokens belong to an org); a service token has no org."""
    from domain import admin
    from domain.postgres import SqlUnitOfWork

    settings = load_settings()
    try:
        with SqlUnitOfWork.begin(make_engine(settings), settings.topics()) as uow:
            if kind == "service":
                found_kind, row = tokens.find(uow.conn, token_id, ("service",))
                tokens.revoke(uow.conn, found_kind, row)
                view = next(t for t in tokens.listing(uow.conn, "service") if t["id"] == str(row.id))
            else:
                org = orgs.get(uow.conn, slug) if slug else None
                view = admin.revoke_token(uow, "cli", token_id, (kind,), org)
    except (tokens.TokenError, admin.AdminError, orgs.OrgError) as exc:
        fail(str(exc))
    echo_fields({k: view[k] for k in ("id", "kind", "prefix", "name", "revoked_at")}, as_json)


@admin_token_app.command("list")
def admin_token_list(
    slug: str = typer.Argument(None, help="Only this org's tokens"), as_json: bool = typer.Option(False, "--json")
) -> None:
    """List admin tokens: id, prefix, name, state, created, last used (never the token)."""
    _list("admin", slug, as_json)


@admin_token_app.command("revoke")
def admin_token_revoke(token_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Revoke an admin token now; its console sessions end with it."""
    _revoke("admin", token_id, None, as_json)


@service_token_app.command("list")
def service_token_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List service tokens: id, prefix, name, state, created, last used, and the orgs a scoped one may act for."""
    _list("service", None, as_json)


@service_token_app.command("revoke")
def service_token_revoke(token_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Revoke a service token now."""
    _revoke("service", token_id, None, as_json)


@org_app.command("scim-tokens")
def org_scim_tokens(slug: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """List an org's SCIM tokens: id, prefix, state (live, expired after a rotation, revoked), created, last used."""
    _list("scim", slug, as_json)


@org_app.command("revoke-scim-token")
def org_revoke_scim_token(slug: str, token_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Revoke one of an org's SCIM tokens now (a leak), without waiting for a rotation's overlap to end."""
    _revoke("scim", token_id, slug, as_json)
