"""`provisioner signals list|redrive`: the session-revoked SETs pushed to the operator's receiver."""

import json
from typing import Annotated

import typer

from cli._common import echo_rows, fail, load_settings
from core.db import make_engine

signals_app = typer.Typer(no_args_is_help=True, help="Session-revoked SETs pushed to the operator's receiver.")


@signals_app.command("list")
def signals_list(
    status: str = typer.Option("dead", help="pending, dead or delivered"),
    limit: int = typer.Option(100, min=1, max=10000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The oldest signals in a status, with attempts and the receiver's last answer."""
    from workers.signals.queue import waiting

    if status not in ("pending", "dead", "delivered"):
        fail("status must be pending, dead or delivered")
    rows = waiting(make_engine(load_settings()), status, limit)
    echo_rows(rows, as_json, lambda r: f"{r['jti']}\t{r['org_id']}\t{r['member_id']}\t{r['reason']}\t"
                                       f"{r['attempts']}\t{(r['last_error'] or '')[:120]}")


@signals_app.command("redrive")
def signals_redrive(
    jtis: Annotated[list[str] | None, typer.Argument(help="SET ids (jti); default: every dead one")] = None,
) -> None:
    """Queue dead signals again (after the receiver is fixed), with a fresh count of attempts."""
    from workers.signals.queue import redrive

    count = redrive(make_engine(load_settings()), jtis or None)
    typer.echo(json.dumps({"redriven": count}))
