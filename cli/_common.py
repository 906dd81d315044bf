"""What every `provisioner` command shares: the settings, the error exit and the record output."""

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

import typer

from core import cursors
from core.settings import Settings


def load_settings() -> Settings:
    """The settings from the environment, read when the command runs (not at import)."""
    return Settings()


def fail(message: str) -> NoReturn:
    """Print `error: <message>` on stderr and exit 2, the exit code of a refused request."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def echo_fields(out: Mapping[str, object], as_json: bool) -> None:
    """Print one record as a JSON object (`--json`) or as `key: value` lines."""
    typer.echo(json.dumps(out) if as_json else "\n".join(f"{k}: {v}" for k, v in out.items()))


def echo_rows(rows: Sequence[Mapping[str, Any]], as_json: bool, line: Callable[[Mapping[str, Any]], str]) -> None:
    """Print records as one JSON array (`--json`) or one tab-separated `line` each."""
    if as_json:
        typer.echo(json.dumps(rows))
    else:
        for row in rows:
            typer.echo(line(row))


# --limit / --cursor / --all, the same on every list command
LIMIT = typer.Option(100, "--limit", min=1, max=1000, help="Rows per page")
CURSOR = typer.Option(None, "--cursor", help="Start after this cursor (printed on stderr after a page that has more)")
ALL = typer.Option(False, "--all", help="Every page, streamed as JSON lines (one object per line)")


def echo_pages(
    fetch: Callable[[str | None, int], cursors.Page],
    *,
    limit: int,
    cursor: str | None,
    stream_all: bool,
    as_json: bool,
    line: Callable[[Mapping[str, Any]], str],
) -> None:
    """One page (a JSON array with `--json`, else a line per row; the next page's cursor on
    stderr), or with `--all` every page from `cursor` on, one JSON object per line, so a list of
    any length streams in constant memory. `fetch(after, limit)` reads one page."""
    try:
        if stream_all:
            after = cursor
            while True:
                page = fetch(after, 1000)
                for row in page.rows:
                    typer.echo(json.dumps(row))
                if page.next is None:
                    return
                after = page.next
        page = fetch(cursor, limit)
    except ValueError as exc:
        fail(f"--cursor: {exc}")
    echo_rows(page.rows, as_json, line)
    if page.next:
        typer.echo(f"more: --cursor {page.next}", err=True)
