"""`provisioner org preview SLUG [--start]` and `provisioner org go-live SLUG`: SCIM in preview, then live."""

import json

import typer

from cli._common import fail, load_settings
from cli.orgs import org_app
from core.db import make_engine
from domain import admin, orgs, preview


@org_app.command("preview")
def org_preview(
    slug: str,
    begin: bool = typer.Option(False, "--start", help="Put the org in preview first (its events are held from now)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """What going live would do: new members, email conflicts, seats billed at first login, held events."""
    with make_engine(load_settings()).begin() as conn:
        try:
            org = orgs.get(conn, slug)
            if begin:
                preview.start(conn, org, "cli")
        except (orgs.OrgError, admin.AdminError) as exc:
            fail(str(exc))
        report = preview.report(conn, org)
    typer.echo(json.dumps(report) if as_json else "\n".join(f"{k}: {v}" for k, v in report.items()))


@org_app.command("go-live")
def org_go_live(slug: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Apply the preview: the held events are published in their order; the workers do the rest."""
    with make_engine(load_settings()).begin() as conn:
        try:
            org = orgs.get(conn, slug)
            released = preview.go_live(conn, org)
        except (orgs.OrgError, admin.AdminError) as exc:
            fail(str(exc))
    out = {"events": released.events, "by_type": released.by_type}
    typer.echo(json.dumps(out) if as_json else f"{released.events} held events released: {released.by_type}")
