"""`provisioner run`: the whole pipeline in the foreground, one child process per role.

A child that dies is restarted (with a short back-off), as an orchestrator would; Ctrl-C or
SIGTERM stops every child gracefully and waits for it.
"""

import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

ROLES: dict[str, list[str]] = {
    "ingest": ["serve"],
    "relay": ["relay"],
    "membership": ["worker", "membership"],
    "billing": ["worker", "billing"],
    "conflicts": ["worker", "conflicts"],
}


@dataclass
class Child:
    role: str
    args: list[str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "core.cli", *self.args])
        self.started_at = time.monotonic()


def supervise(roles: list[str] | None = None) -> int:
    children = [Child(role, ROLES[role]) for role in roles or list(ROLES)]
    stopping = {"now": False}

    def stop(*_: object) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for child in children:
        child.start()
    while not stopping["now"]:
        time.sleep(0.5)
        for child in children:
            assert child.process is not None
            if child.process.poll() is not None and not stopping["now"]:
                print(f"[supervisor] {child.role} exited with {child.process.returncode}; restarting", file=sys.stderr)
                child.restarts += 1
                if time.monotonic() - child.started_at < 5:
                    time.sleep(min(5.0, 0.5 * child.restarts))
                child.start()
    for child in children:
        if child.process and child.process.poll() is None:
            child.process.terminate()
    deadline = time.monotonic() + 20
    for child in children:
        if child.process:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
    return 0
