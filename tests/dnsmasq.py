"""A real DNS server on loopback for the domain-verification tests: Debian's dnsmasq
(`tests/integration/dns_setup.sh` installs it when missing), on a free port, answering only from
the records a test publishes. Import the `dns_server` fixture into a test module to use it.

dnsmasq reads TXT records from its command line only, so publishing restarts it; a name with no
record of its own is NXDOMAIN (every name is local: nothing is forwarded anywhere).
"""

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest

_SETUP = Path(__file__).with_name("integration") / "dns_setup.sh"
_READY = "ready.provisioner-tests.example"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DnsServer:
    """dnsmasq on 127.0.0.1:`port`; `publish` and `unpublish` TXT records, `exists` a name without TXT."""

    def __init__(self, binary: str):
        self.binary = binary
        self.port = _free_udp_port()
        self.txt: dict[str, list[str]] = {}
        self.names: set[str] = set()  # names that exist (an A record) but have no TXT record
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def nameserver(self) -> str:
        """What `dns_nameservers` is set to for this server."""
        return f"127.0.0.1:{self.port}"

    def publish(self, name: str, *values: str) -> None:
        self.txt[name] = list(values)
        self.restart()

    def unpublish(self, name: str) -> None:
        self.txt.pop(name, None)
        self.restart()

    def exists(self, name: str) -> None:
        self.names.add(name)
        self.restart()

    def restart(self) -> None:
        self.stop()
        args = [
            self.binary, "--no-daemon", f"--port={self.port}", "--listen-address=127.0.0.1", "--bind-interfaces",
            "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--pid-file", "--local=/#/", "--log-facility=-",
            "--quiet-dhcp", f"--txt-record={_READY},ready",
        ]  # fmt: skip
        args += [f"--txt-record={name},{value}" for name, values in self.txt.items() for value in values]
        args += [f"--host-record={name},127.0.0.1" for name in self.names]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 10
        query = dns.message.make_query(_READY, "TXT")
        while True:
            assert self.process is not None and self.process.poll() is None, "dnsmasq exited"
            try:
                if dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.2).rcode() == dns.rcode.NOERROR:
                    return
            except (dns.exception.Timeout, OSError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError("dnsmasq did not answer within 10 s")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture(scope="module")
def dns_server() -> Iterator[DnsServer]:
    """A DNS server of the module's own; stopped when the module's tests are done."""
    subprocess.run(["bash", str(_SETUP)], check=True)
    binary = shutil.which("dnsmasq") or shutil.which("dnsmasq", path="/usr/sbin:/sbin")
    assert binary, "dns_setup.sh did not install dnsmasq"
    server = DnsServer(binary)
    server.restart()
    yield server
    server.stop()


@pytest.fixture
def silent_nameserver() -> Iterator[str]:
    """A nameserver address on loopback that receives queries and never answers them."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"
