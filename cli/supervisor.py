"""`provisioner run`: the whole pipeline in the foreground, one child process per role.

A child that dies, whatever the cause (a crash, `kill -9`, the OOM killer), is started again,
as an orchestrator would restart a pod: at once the first time, then with an exponential
back-off while it keeps dying young (a crash loop must not spin), back to no delay once it has
stayed up for `STABLE_SECONDS`. Each child's back-off is its own: one crash-looping role never
delays another's restart. Ctrl-C or SIGTERM stops every child gracefully and waits for it.
"""

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

ROLES: dict[str, list[str]] = {
    "ingest": ["serve"],
    "relay": ["relay"],
    "membership": ["worker", "membership"],
    "billing": ["worker", "billing"],
    "conflicts": ["worker", "conflicts"],
    "signals": ["worker", "signals"],
}

FIRST_DELAY = 0.5
MAX_DELAY = 30.0
STABLE_SECONDS = 30.0
_TICK = 0.1


def backoff(quick_deaths: int) -> float:
    """Delay before the next start after `quick_deaths` consecutive deaths within STABLE_SECONDS.

    The first death of a child that ran stably restarts it at once; then 0.5 s, 1 s, 2 s, ...
    capped at MAX_DELAY.
    """
    if quick_deaths <= 1:
        return 0.0
    return min(MAX_DELAY, FIRST_DELAY * 2.0 ** (quick_deaths - 2))


def _command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "cli", *args]


log = logging.getLogger("provisioner.supervisor")


@dataclass
class Child:
    role: str
    command: list[str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    quick_deaths: int = 0
    started_at: float = 0.0
    start_at: float | None = None  # when a dead child is due to start again

    def start(self) -> None:
        self.process = subprocess.Popen(self.command)
        self.started_at = time.monotonic()
        self.start_at = None

    def check(self, now: float) -> None:
        """Notice a death and schedule the restart; start it when it is due."""
        if self.start_at is None:
            assert self.process is not None
            code = self.process.poll()
            if code is None:
                return
            lived = now - self.started_at
            self.quick_deaths = self.quick_deaths + 1 if lived < STABLE_SECONDS else 1
            delay = backoff(self.quick_deaths)
            self.start_at = now + delay
            log.warning("%s exited with %s; restarting in %.1f s", self.role, code, delay, extra={
                "role": self.role, "pid": self.process.pid, "returncode": code,
                "lived_seconds": round(lived, 1), "restart_in_seconds": delay})
        if now >= self.start_at:
            self.restarts += 1
            self.start()
            assert self.process is not None
            log.info("%s restarted", self.role, extra={"role": self.role, "pid": self.process.pid, "restarts": self.restarts})


def supervise(roles: list[str] | None = None, commands: dict[str, list[str]] | None = None,
              until: Callable[[], bool] | None = None) -> int:
    """Run the roles (or explicit `commands` by name) until SIGINT/SIGTERM (or `until()`)."""
    wanted = commands or {role: _command(ROLES[role]) for role in roles or list(ROLES)}
    children = [Child(name, command) for name, command in wanted.items()]
    stopping = {"now": False}

    def stop(*_: object) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for child in children:
        child.start()
        assert child.process is not None
        log.info("%s started", child.role, extra={"role": child.role, "pid": child.process.pid})
    while not stopping["now"] and not (until and until()):
        time.sleep(_TICK)
        now = time.monotonic()
        for child in children:
            if not stopping["now"]:
                child.check(now)
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
                child.process.wait()
    return 0
