"""`provisioner audit prune`: delete SCIM audit rows past the retention period."""

import json

import typer

from cli._common import load_settings
from core.db import make_engine

audit_app = typer.Typer(no_args_is_help=True, help="The SCIM audit trail.")


@audit_app.command("prune")
def audit_prune(
    days: int = typer.Option(None, min=1, help="Keep this many days (default: PROVISIONER_AUDIT_RETENTION_DAYS)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Delete SCIM audit rows older than the retention period (ingest also does it every hour)."""
    from ingest.audit import prune

    settings = load_settings()
    keep = days or settings.audit_retention_days
    deleted = prune(make_engine(settings), keep, wait=True)
    if as_json:
        typer.echo(json.dumps({"deleted": deleted, "retention_days": keep}))
    else:
        typer.echo(f"deleted {deleted} rows older than {keep} days")
