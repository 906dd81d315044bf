"""`provisioner run`'s supervisor: a killed child comes back; a crash loop backs off; SIGTERM stops all.

Real processes, no Kafka or PostgreSQL: the children are small Python programs, so the test
is about the supervisor alone (the fault run in test_faults.py kills the real roles).
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cli.supervisor import MAX_DELAY, backoff
from tests.conftest import wait_for

pytestmark = pytest.mark.chaos

ROOT = Path(__file__).resolve().parents[2]

_SUPERVISOR = """
import sys
from core.logs import configure
from core.settings import Settings
from cli.supervisor import supervise
configure(Settings(log_format="json", log_level="INFO"))
py = sys.executable
sys.exit(supervise(commands={
    "steady": [py, "-c", "import time; time.sleep(600)"],
    "crashing": [py, "-c", "raise SystemExit(3)"],
}))
"""


def test_backoff_restarts_a_first_death_at_once_then_doubles_up_to_a_cap():
    assert [backoff(n) for n in range(1, 7)] == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0]
    assert backoff(50) == MAX_DELAY


def _events(path: Path) -> list[dict]:
    events = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("logger") == "provisioner.supervisor":
            events.append(entry)
    return events


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_a_killed_child_is_restarted_and_a_crash_loop_backs_off(tmp_path):
    log = tmp_path / "supervisor.log"
    with open(log, "wb") as out:
        sup = subprocess.Popen([sys.executable, "-c", _SUPERVISOR], cwd=ROOT, stdout=out, stderr=out)
    try:
        started = wait_for(lambda: [e for e in _events(log) if e["message"] == "steady started"], timeout=30,
                           message="the steady child to start")
        first = started[0]["pid"]
        os.kill(first, signal.SIGKILL)
        restarted = wait_for(lambda: [e for e in _events(log) if e["message"] == "steady restarted"], timeout=30,
                             message="the killed child to be restarted")
        second = restarted[0]["pid"]
        assert second != first and _alive(second)
        # the crashing child dies at once every time: its delays grow 0, 0.5, 1, 2 ...
        def crashing_delays() -> list[float]:
            d = [e["restart_in_seconds"] for e in _events(log) if e.get("role") == "crashing" and "restart_in_seconds" in e]
            return d[3:] and d

        delays = wait_for(crashing_delays, timeout=60, message="four deaths of the crashing child")
        assert delays[:4] == [0.0, 0.5, 1.0, 2.0]
        # the steady child was not held back by the other's back-off
        exited = [e for e in _events(log) if e.get("role") == "steady" and "restart_in_seconds" in e]
        assert exited[0]["restart_in_seconds"] == 0.0 and exited[0]["returncode"] == -signal.SIGKILL
    finally:
        sup.send_signal(signal.SIGTERM)
        code = sup.wait(timeout=30)
    assert code == 0
    for e in _events(log):
        if "pid" in e:
            assert not _alive(e["pid"]), f"{e['role']} pid {e['pid']} outlived the supervisor"
