"""The HTTP edge on a real uvicorn process: an announced body over the limit is refused before it
is sent (before authentication, memory flat), a chunked one is cut at the limit, and slow heads or
bodies are closed within the configured seconds."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from core.settings import Settings, free_port, to_env

pytestmark = pytest.mark.security

HEADER_TIMEOUT, BODY_TIMEOUT = 2.0, 2.0
SCIM_DEADLINE = 1.0  # shorter than the body timeout: a SCIM body gets only its request's deadline


@pytest.fixture(scope="module")
def edge(settings: Settings, engine: object) -> Iterator[tuple[str, int, int]]:
    """An ingest process of its own with short read timeouts: (host, port, pid)."""
    port = free_port()
    env = {
        **os.environ,
        **to_env(settings),
        "PROVISIONER_HTTP_PORT": str(port),
        "PROVISIONER_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "PROVISIONER_HTTP_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "PROVISIONER_HTTP_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
        "PROVISIONER_SCIM_REQUEST_DEADLINE_SECONDS": str(SCIM_DEADLINE),
    }
    proc = subprocess.Popen([sys.executable, "-m", "cli", "serve"], env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "ingest did not start"
            time.sleep(0.1)
        yield "127.0.0.1", port, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def _read_all(sock: socket.socket, timeout: float) -> bytes:
    """What the server sends until it closes the connection (or `timeout` passes)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def _closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closes the connection; fails if it is still open after `seconds`."""
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the connection was still open after {seconds} s")
    return time.monotonic() - started


@pytest.mark.parametrize(
    "path",
    ["/internal/v1/logins", "/scim/acme/v2/Users", "/admin/v1/members", "/console/login", "/sso/acme/saml/acs"],
)
def test_an_announced_body_over_the_limit_is_refused_before_it_is_sent(edge, path):
    host, port, pid = edge
    before = _rss_kib(pid)
    with socket.create_connection((host, port)) as sock:
        # only the head of a 200 MB body, no token: the answer comes while nothing of the body was sent
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {200 * 1024 * 1024}\r\n"
        sock.sendall(head.encode() + b"\r\n")
        started = time.monotonic()
        answer = _read_all(sock, 5)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert time.monotonic() - started < 2
    assert b"connection: close" in answer.lower()
    assert _rss_kib(pid) - before < 10 * 1024  # flat: less than 10 MiB of growth


def test_a_declared_50_mb_body_is_refused_by_a_streaming_client_before_it_is_sent(edge):
    host, port, _ = edge
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(50):
            sent += 1024 * 1024
            yield b"x" * (1024 * 1024)

    with httpx.Client(timeout=10) as client:
        try:
            response = client.post(f"http://{host}:{port}/internal/v1/logins", content=body(),
                                   headers={"Content-Length": str(50 * 1024 * 1024)})
            assert response.status_code == 413 and response.json()["status"] == 413
        except httpx.TransportError:
            pass  # the server closed while the client still wrote: also a refusal before reading
    assert sent < 50 * 1024 * 1024


def test_a_chunked_body_is_cut_at_the_limit(edge):
    host, port, pid = edge
    before = _rss_kib(pid)
    with socket.create_connection((host, port)) as sock:
        sock.sendall(b"POST /internal/v1/logins HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 8192
        try:
            for _ in range(4096):  # up to 32 MiB, far past the 16 KiB limit
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed by the server after its 413
        answer = _read_all(sock, 5)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b'"status":413' in answer
    assert _rss_kib(pid) - before < 10 * 1024


def test_a_scim_refusal_is_a_scim_error(edge):
    host, port, _ = edge
    with socket.create_connection((host, port)) as sock:
        sock.sendall(b"POST /scim/acme/v2/Users HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n")
        answer = _read_all(sock, 5)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"application/scim+json" in answer and b'"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"]' in answer


def test_a_slow_loris_head_is_closed_within_the_header_timeout(edge):
    host, port, _ = edge
    with socket.create_connection((host, port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for _ in range(3):  # a byte at a time does not keep it open
            time.sleep(0.4)
            sock.sendall(b"X")
        waited = _closed_within(sock, HEADER_TIMEOUT + 3)
    assert waited < HEADER_TIMEOUT + 1


def test_an_idle_connection_without_a_head_is_closed(edge):
    host, port, _ = edge
    with socket.create_connection((host, port)) as sock:
        assert _closed_within(sock, HEADER_TIMEOUT + 3) < HEADER_TIMEOUT + 1


def test_a_slow_body_gets_408_within_the_body_timeout(edge):
    host, port, _ = edge
    with socket.create_connection((host, port)) as sock:
        sock.sendall(b"POST /internal/v1/logins HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        started = time.monotonic()
        for _ in range(3):
            time.sleep(0.4)
            sock.sendall(b" ")
        answer = _read_all(sock, BODY_TIMEOUT + 3)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert waited < BODY_TIMEOUT + 1


def test_a_slow_scim_body_gets_408_within_the_scim_deadline(edge):
    host, port, _ = edge
    with socket.create_connection((host, port)) as sock:
        sock.sendall(b"POST /scim/acme/v2/Users HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        started = time.monotonic()
        sock.sendall(b" ")
        answer = _read_all(sock, BODY_TIMEOUT + 3)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"within 1 seconds" in answer
    assert waited < BODY_TIMEOUT  # the SCIM deadline, not the longer body timeout


def test_a_kept_alive_connection_still_serves_requests(edge):
    host, port, _ = edge
    with httpx.Client(base_url=f"http://{host}:{port}") as client:
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
            time.sleep(0.2)
        response = client.post("/internal/v1/logins", json={"org": "acme", "email": "a@example.test"})
        assert response.status_code == 401  # a small body passes the edge and reaches the token check
