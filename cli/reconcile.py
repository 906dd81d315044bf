"""`provisioner reconcile SLUG [--fix]`: an org's SCIM resources, members, seats and billing topic compared."""

import json

import typer

from cli._common import fail, load_settings
from core.db import make_engine
from domain import orgs


def reconcile(
    slug: str = typer.Argument(..., help="The org"),
    apply_fixes: bool = typer.Option(False, "--fix", help="Repair what can be, through the events a normal change emits"),
    min_age: float = typer.Option(60.0, "--min-age", min=0, help="Leave changes younger than this many seconds alone"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Report every drift between the org's SCIM users, members, seat ledger and billing topic;
    exit 0 when there is none (or, with --fix, none is left unrepaired), 1 otherwise."""
    from workers import reconcile as r

    settings = load_settings()
    engine = make_engine(settings)
    with engine.connect() as conn:
        try:
            org = orgs.get(conn, slug)
        except orgs.OrgError as exc:
            fail(str(exc))
    drifts = r.find(settings, engine, org.id, min_age_seconds=min_age)
    if apply_fixes:
        r.fix(settings, engine, drifts)
    left = [d for d in drifts if not d.fixed]
    if as_json:
        typer.echo(json.dumps({"org": slug, "drifts": [d.as_dict() for d in drifts], "counts": r.counts(drifts),
                               "fixed": len(drifts) - len(left), "unrepaired": len(left)}))
    else:
        for d in drifts:
            state = f"\tfixed: {', '.join(d.staged) or 'nothing staged'}" if d.fixed else ("\tNOT FIXED" if apply_fixes else "")
            typer.echo(f"{d.kind}\t{d.member_id or d.scim_user_id or '-'}\t{d.detail}{state}")
        typer.echo(f"{len(drifts)} drift(s), {len(drifts) - len(left)} fixed", err=True)
    raise typer.Exit(1 if left else 0)
