"""A throw-away PostgreSQL and Kafka (one broker or three) for fault injection, via deploy/local/stack.sh.

Faults are injected into servers this run started itself (own state directory, own free
ports), never into the shared stack that `make run` or other test sessions use. The Kafka jars
are shared with the main stack (fetched once). `purge` stops everything and deletes the state.
"""

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from core.settings import free_port

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "deploy" / "local" / "stack.sh"


class Stack:
    """PostgreSQL plus either a single broker (`kafka="single"`) or a three-broker cluster."""

    def __init__(self, kafka: str = "cluster", name: str | None = None):
        assert kafka in ("single", "cluster")
        self.kafka = kafka
        main_state = Path(os.environ.get("PROVISIONER_STATE_DIR") or ROOT / ".local")
        self.state = main_state.resolve() / f"chaos-{name or uuid.uuid4().hex[:8]}"
        self.pg_port = free_port()
        self.kafka_ports = [free_port() for _ in range(3 if kafka == "cluster" else 1)]
        self.controller_ports = [free_port() for _ in self.kafka_ports]
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")}
        env.update(
            PROVISIONER_STATE_DIR=str(self.state),
            PROVISIONER_KAFKA_LIBS=os.environ.get("PROVISIONER_KAFKA_LIBS") or str(main_state.resolve() / "kafka" / "libs"),
            PROVISIONER_PG_PORT=str(self.pg_port),
            PROVISIONER_KAFKA_PORT=str(self.kafka_ports[0]),
            PROVISIONER_KAFKA_CONTROLLER_PORT=str(self.controller_ports[0]),
            PROVISIONER_CLUSTER_PORTS=",".join(map(str, self.kafka_ports if kafka == "cluster" else [0, 0, 0])),
            PROVISIONER_CLUSTER_CONTROLLER_PORTS=",".join(map(str, self.controller_ports if kafka == "cluster" else [0, 0, 0])),
        )
        self.env = env
        self.database_url = f"postgresql://provisioner:provisioner@127.0.0.1:{self.pg_port}/provisioner"
        self.bootstrap = ",".join(f"127.0.0.1:{p}" for p in self.kafka_ports)
        self.replication = len(self.kafka_ports)

    def _run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 240) -> float:
        """Run a stack.sh command; returns how long it took (seconds)."""
        start = time.monotonic()
        done = subprocess.run(["bash", str(STACK), *args], env=env or self.env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"stack.sh {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return time.monotonic() - start

    def up(self) -> None:
        if self.kafka == "cluster":
            self._run("cluster", "up")
            # PostgreSQL only: the cluster's bootstrap list reads as an external Kafka to `up`
            self._run("up", env={**self.env, "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap})
        else:
            self._run("up")

    def restart_kafka(self) -> float:
        return self._run("restart-kafka")

    def kill_broker(self, n: int) -> float:
        return self._run("cluster", "kill-broker", str(n))

    def start_broker(self, n: int) -> float:
        return self._run("cluster", "start-broker", str(n))

    def restart_postgres(self) -> float:
        return self._run("restart-postgres")

    def crash_postgres(self) -> float:
        """kill -9 of the postmaster, then start (crash recovery)."""
        return self._run("kill-postgres") + self._run("up", env=self._pg_only())

    def _pg_only(self) -> dict[str, str]:
        return {**self.env, "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap} if self.kafka == "cluster" else self.env

    def purge(self) -> None:
        try:
            self._run("purge", env=self.env)
        finally:
            shutil.rmtree(self.state, ignore_errors=True)
