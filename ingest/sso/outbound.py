"""Every outbound call to an org's IdP: checked addresses, a pinned connection, short timeouts, a cap per org.

- The URL's host is resolved once and every address must be public (`is_global`, not multicast; an
  IPv4 address inside IPv6 counts as that IPv4 address) unless `idp_allow_private_addresses`; cloud
  metadata addresses are refused always. The connection goes to the checked address (the Host header
  and TLS SNI/certificate check keep the name), so a second DNS answer cannot move it.
- Redirects are not followed, proxies from the environment are not used, answers over MAX_BYTES or
  slower than the timeouts are failures.
- At most `idp_calls_per_org` calls per org at once in this process; one more is `Busy` at once (the
  caller holds a thread; the SSO pages queue before taking one, see bulkhead.py).
- Every failure is `Unreachable` without details (the reason is logged): what answers on a port, or
  that nothing does, is never told to the caller.
"""

import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from core.settings import Settings

log = logging.getLogger("provisioner.sso.outbound")

MAX_BYTES = 2 * 1024 * 1024
# AWS/GCP/Azure (169.254.169.254, fd00:ec2::254), Alibaba (100.100.100.200), Oracle (192.0.0.192)
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200",
                                                                  "192.0.0.192", "169.254.170.2"))
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Unreachable(ValueError):
    """The IdP could not be used; the message is the caller's one message for every cause."""


class Busy(Exception):
    """This org already has `idp_calls_per_org` calls to its IdP in flight."""


_slots: dict[str, int] = {}
_slots_lock = threading.Lock()
_ssl: ssl.SSLContext | None = None


@contextmanager
def org_slot(settings: Settings, org: str) -> Iterator[None]:
    """Hold one of the org's outbound slots for the block, or raise Busy when they are all taken."""
    with _slots_lock:
        if _slots.get(org, 0) >= settings.idp_calls_per_org:
            raise Busy(org)
        _slots[org] = _slots.get(org, 0) + 1
    try:
        yield
    finally:
        with _slots_lock:
            _slots[org] -= 1
            if not _slots[org]:  # an entry only while calls are in flight: unknown slugs leave nothing behind
                del _slots[org]


def _embedded_v4(ip: Address) -> Address:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64), else the address itself."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return ip.ipv4_mapped
        if ip.sixtofour:
            return ip.sixtofour
        if ip in ipaddress.ip_network("64:ff9b::/96"):
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def check_syntax(url: str) -> None:
    """ValueError("not a usable URL: ...") for a URL that no request could be made to (decided by its text alone,
    so the reason may be told)."""
    try:
        target = httpx.URL(url)
        if target.scheme not in ("https", "http") or not target.host:
            raise ValueError("an http(s) URL with a host is required")
        target.host.encode("idna")
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        raise ValueError(f"not a usable URL: {exc}") from None


def address_allowed(settings: Settings, ip: Address) -> bool:
    """Public unicast, or (with `idp_allow_private_addresses`) any address but a cloud metadata one."""
    inner = _embedded_v4(ip)
    if ip in METADATA_ADDRESSES or inner in METADATA_ADDRESSES:
        return False
    if settings.idp_allow_private_addresses:
        return True
    return all(a.is_global and not a.is_multicast for a in (ip, inner))


def _pinned_address(settings: Settings, host: str, port: int) -> Address:
    """The host's first address once every address it resolves to is allowed; raises Unreachable."""
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        found = [literal]
    else:
        try:
            found = [ipaddress.ip_address(str(info[4][0]).split("%")[0])
                     for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]
        except (OSError, UnicodeError, ValueError) as exc:
            raise Unreachable(f"cannot resolve {host!r}: {exc}") from None
    if not found or not all(address_allowed(settings, ip) for ip in found):
        raise Unreachable(f"{host!r} resolves to an address that is not allowed: {sorted(map(str, found))}")
    return found[0]


def _tls() -> ssl.SSLContext:
    global _ssl
    if _ssl is None:  # loading the CA bundle costs milliseconds: once per process
        _ssl = httpx.create_ssl_context()
    return _ssl


@dataclass(frozen=True)
class Answer:
    """What the IdP answered: the status and the whole (decoded) body."""

    status_code: int
    content: bytes
    encoding: str

    @property
    def text(self) -> str:
        return self.content.decode(self.encoding, errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


def call(settings: Settings, org: str, method: str, url: str, *, headers: dict[str, str] | None = None,
         data: dict[str, str] | None = None) -> Answer:
    """One request to the org's IdP under the rules above; the response's body is read (at most MAX_BYTES).

    Raises Busy (every slot of the org taken) or Unreachable (anything else that went wrong)."""
    with org_slot(settings, org):
        try:
            return _call(settings, method, url, headers or {}, data)
        except Unreachable as exc:
            log.warning("IdP call refused or failed", extra={"org": org, "url": url[:300], "reason": str(exc)[:300]})
            raise
        except (httpx.HTTPError, httpx.InvalidURL, ssl.SSLError, OSError, ValueError) as exc:
            log.warning("IdP call failed", extra={"org": org, "url": url[:300], "reason": f"{type(exc).__name__}: {exc}"[:300]})
            raise Unreachable(str(exc)) from None


def _call(settings: Settings, method: str, url: str, headers: dict[str, str], data: dict[str, str] | None) -> Answer:
    target = httpx.URL(url)
    if target.scheme not in ("https", "http") or not target.host:
        raise Unreachable("not an http(s) URL")
    port = target.port or (443 if target.scheme == "https" else 80)
    pinned = _pinned_address(settings, target.host, port)
    extensions: dict[str, Any] = {}
    try:
        ipaddress.ip_address(target.host)
    except ValueError:
        extensions["sni_hostname"] = target.host  # TLS checks the certificate against the name, not the address
    request_headers = {**headers, "Host": target.netloc.decode("ascii")}
    read = settings.idp_read_timeout_seconds
    timeout = httpx.Timeout(read, connect=settings.idp_connect_timeout_seconds, pool=settings.idp_connect_timeout_seconds)
    deadline = time.monotonic() + settings.idp_connect_timeout_seconds + 2 * read  # a drip-feeding server stops here
    # A client per call: connections are never shared between two names pinned to one address.
    with httpx.Client(verify=_tls(), timeout=timeout, follow_redirects=False, trust_env=False) as client:
        request = client.build_request(method, target.copy_with(host=str(pinned)), headers=request_headers, data=data,
                                       extensions=extensions)
        response = client.send(request, stream=True)
        try:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_BYTES:
                    raise Unreachable("the answer is too large")
                if time.monotonic() > deadline:
                    raise Unreachable("the answer is too slow")
        finally:
            response.close()
        if response.is_redirect:
            raise Unreachable(f"a redirect ({response.status_code}), not followed")
        return Answer(response.status_code, bytes(body), response.encoding or "utf-8")
