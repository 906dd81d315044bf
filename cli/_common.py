"""What every `provisioner` command shares: the settings, the error exit and the record output."""

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

import typer

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
