"""`provisioner db|topics ...` and the process commands (serve, relay, worker, run) that operators start."""

import dataclasses
import json
from typing import Annotated

import typer

from cli._common import fail, load_settings

db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
topics_app = typer.Typer(no_args_is_help=True, help="Kafka topics.")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the schema migrations."""
    from core.migrate import upgrade

    upgrade(load_settings())


@topics_app.command("create")
def topics_create(as_json: bool = typer.Option(False, "--json")) -> None:
    """Create the missing Kafka topics, and give every topic its configured retention and
    min.insync.replicas (existing ones too); running it again changes nothing."""
    from kafka.errors import KafkaError

    from events.kafka import ensure_topics

    settings = load_settings()
    try:
        report = ensure_topics(settings)
    except KafkaError as exc:
        fail(f"Kafka at {settings.kafka_bootstrap_servers}: {exc}")
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(report)))
        return
    for name in report.created:
        typer.echo(f"created {name}")
    for name, changed in report.altered.items():
        typer.echo(f"altered {name}: " + ", ".join(f"{key} {was} -> {now}" for key, (was, now) in changed.items()))
    for name in report.unchanged:
        typer.echo(f"unchanged {name}")


# The process commands sit on the root app; cli.main registers them there.


def serve() -> None:
    """Run the ingest HTTP server (SCIM, health, metrics)."""
    import uvicorn

    from ingest.server import PROTOCOL

    settings = load_settings()
    uvicorn.run(
        "ingest.app:app_from_env",
        factory=True,
        http=PROTOCOL,  # httptools with a header read timeout (bodies are timed by the app's edge)
        host=settings.http_host,
        port=settings.http_port,
        workers=settings.http_workers,
        log_level="warning",
        access_log=False,
    )


def relay() -> None:
    """Run the outbox relay."""
    from events.main import run_relay

    run_relay(load_settings())


def worker(name: str = typer.Argument(..., help="membership, billing or conflicts")) -> None:
    """Run one worker of a consumer group."""
    from workers.main import WORKERS, run_worker

    if name not in WORKERS:
        fail(f"unknown worker {name!r}; known: {', '.join(WORKERS)}")
    run_worker(name, load_settings())


def run(roles: Annotated[list[str] | None, typer.Argument(help="Roles to run (default: all)")] = None) -> None:
    """Run ingest, the relay and every worker in the foreground; Ctrl-C stops all."""
    from cli.supervisor import supervise

    raise typer.Exit(supervise(roles))
