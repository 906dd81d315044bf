"""`provisioner dlq list|redrive`: inspect the records a worker set aside and re-apply them after a fix."""

import json
from collections.abc import Mapping
from typing import Annotated, Any

import typer

from cli._common import ALL, CURSOR, LIMIT, echo_pages, fail, load_settings
from core import cursors
from core.db import make_engine

dlq_app = typer.Typer(no_args_is_help=True, help="Dead letters: records a worker set aside.")


@dlq_app.command("list")
def dlq_list(
    consumer: str = typer.Option(None, help="membership, billing or conflicts"),
    include_redriven: bool = typer.Option(False, "--include-redriven", help="Include redriven ones"),
    as_json: bool = typer.Option(False, "--json"),
    limit: int = LIMIT,
    cursor: str = CURSOR,
    stream_all: bool = ALL,
) -> None:
    """List dead letters with their error and origin (topic, partition, offset), a page at a time (oldest first)."""
    from workers.dead_letters import page_dead_letters

    with make_engine(load_settings()).connect() as conn:

        def fetch(after: str | None, size: int) -> cursors.Page:
            return page_dead_letters(conn, consumer, include_redriven, limit=size, after=after)

        echo_pages(fetch, limit=limit, cursor=cursor, stream_all=stream_all, as_json=as_json, line=_line)


def _line(d: Mapping[str, Any]) -> str:
    return f"{d['id']}\t{d['consumer']}\t{d['topic']}[{d['partition']}]@{d['offset']}\t{d['error'][:120]}"


@dlq_app.command("redrive")
def dlq_redrive(
    consumer: str,
    ids: Annotated[list[int] | None, typer.Argument(help="Dead letter ids (default: all of the consumer's)")] = None,
) -> None:
    """Re-apply dead letters with the worker's current handler (after a fix); exit 1 if some fail again."""
    from workers.dead_letters import redrive

    settings = load_settings()
    try:
        report = redrive(make_engine(settings), settings, consumer, ids or None)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(json.dumps(report))
    raise typer.Exit(1 if report["failed"] else 0)
