"""`provisioner billing verify`: the billing topic checked against PostgreSQL's facts."""

from typing import Annotated

import typer

from cli._common import echo_fields, fail, load_settings
from core.db import make_engine
from domain import orgs

billing_app = typer.Typer(no_args_is_help=True, help="Billing events.")


@billing_app.command("verify")
def billing_verify(
    wait: float = typer.Option(30.0, help="Seconds to wait for events still in the outbox"),
    org: Annotated[list[str] | None, typer.Option("--org", help="Only these orgs (slugs); default all")] = None,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Check the billing topic against PostgreSQL's facts; exits 1 on any mismatch or duplicate."""
    from workers.billing.verify import verify_until_settled

    settings = load_settings()
    engine = make_engine(settings)
    org_ids = None
    if org:
        with engine.connect() as conn:
            try:
                org_ids = [orgs.get(conn, slug).id for slug in org]
            except orgs.OrgError as exc:
                fail(str(exc))
    report = verify_until_settled(settings, engine, wait, org_ids)
    echo_fields(report.as_dict(), as_json)
    raise typer.Exit(0 if report.clean and not report.pending else 1)
