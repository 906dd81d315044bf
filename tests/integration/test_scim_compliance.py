"""scim2-tester, run the way an integrator runs it (the `scim ... test` command of scim2-cli),
against a fresh org, side by side with the reference in-memory scim2-server."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import _free_port, wait_for

pytestmark = pytest.mark.integration

SCIM_CLI = Path(sys.executable).with_name("scim")


def run_tester(url: str, token: str) -> str:
    env = {**os.environ, "SCIM_CLI_HEADERS": f"Authorization: Bearer {token}"}
    result = subprocess.run([str(SCIM_CLI), "--url", url, "test"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def problems(report: str) -> list[str]:
    return [line for line in report.splitlines() if re.match(r"^(ERROR|CRITICAL)\b", line)]


@pytest.fixture(scope="module")
def reference_successes() -> int:
    """The reference server's count of SUCCESS checks on the same tester run."""
    server = Path(sys.executable).with_name("scim2-server")
    assert server.exists() or shutil.which("scim2-server")
    port = _free_port()
    proc = subprocess.Popen(
        [str(server), "--port", str(port), "--bearer-token", "ref-token"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{url}/ServiceProviderConfig", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=20, message="reference scim2-server")
        return run_tester(url, "ref-token").count("SUCCESS")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_scim2_tester_reports_no_error(scim_org, reference_successes):
    report = run_tester(scim_org.base_url, scim_org.token)
    assert problems(report) == [], "\n".join(problems(report))
    assert report.count("SUCCESS") >= reference_successes > 0
