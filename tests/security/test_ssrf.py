"""IdP URLs cannot reach this service's own network, and a failed fetch never tells what listens on a port.

Loopback ports with different things behind them (nothing, PostgreSQL, Kafka, a server that resets, one
that never answers, one that answers something that is not IdP metadata) all give one message, from the
protocol modules, the admin API and the CLI alike; private, link-local, unique-local, multicast and cloud
metadata addresses are refused before any connection, unless the operator setting allows them (metadata
addresses: never).
"""

import datetime
import ipaddress
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import Engine

from core.settings import Settings, free_port, to_env
from domain import admin
from ingest.sso import oidc, outbound, saml, saml_metadata
from tests.conftest import ScimOrg

pytestmark = pytest.mark.security


class _Listener:
    """A loopback TCP server doing one thing with every connection, on a thread."""

    def __init__(self, behaviour: str):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port, self.behaviour, self.held = self.sock.getsockname()[1], behaviour, []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.behaviour == "reset":  # linger 0: close sends a RST
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
            elif self.behaviour == "silent":
                self.held.append(conn)  # accepted, never answered
            else:
                conn.recv(65536)
                body = b"# HELP up 1\nup 1\n"
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                conn.close()

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture(scope="module")
def ports(settings: Settings) -> Iterator[dict[str, int]]:
    """Loopback ports with different things behind them."""
    listeners = {name: _Listener(name) for name in ("reset", "silent", "metrics")}
    kafka = settings.kafka_bootstrap_servers.split(",")[0].rsplit(":", 1)
    postgres = urlsplit(settings.database_url.replace("postgresql+psycopg", "postgresql")).port or 5432
    yield {"nothing": free_port(), "postgres": postgres, "kafka": int(kafka[1]),
           **{name: listener.port for name, listener in listeners.items()}}
    for listener in listeners.values():
        listener.close()


def fast(settings: Settings, **update: Any) -> Settings:
    """The suite's settings with short timeouts (the silent port answers nothing)."""
    return settings.model_copy(update={"idp_read_timeout_seconds": 0.5, "idp_connect_timeout_seconds": 0.5, **update})


def _saml_errors(settings: Settings, engine: Engine, slug: str, ports: dict[str, int]) -> dict[str, str]:
    errors = {}
    for name, port in ports.items():
        with pytest.raises(ValueError) as refused:
            saml.configure(engine, settings, slug, metadata_url=f"http://127.0.0.1:{port}/metadata")
        errors[name] = str(refused.value)
    return errors


def test_every_loopback_port_gives_one_message_for_saml(settings, engine, scim_org: ScimOrg, ports):
    allowed = _saml_errors(fast(settings), engine, scim_org.slug, ports)  # connections are made: the oracle's case
    assert set(allowed.values()) == {saml_metadata.UNUSABLE}, allowed
    refused = _saml_errors(fast(settings, idp_allow_private_addresses=False), engine, scim_org.slug, ports)
    assert set(refused.values()) == {saml_metadata.UNUSABLE}, refused


def test_every_loopback_port_gives_one_message_for_oidc(settings, engine, scim_org: ScimOrg, ports):
    for allow in (True, False):
        errors = set()
        for port in ports.values():
            with pytest.raises(ValueError) as refused:
                oidc.configure(engine, fast(settings, idp_allow_private_addresses=allow), scim_org.slug,
                               issuer=f"http://127.0.0.1:{port}", client_id="a", client_secret="b")
            errors.add(str(refused.value))
        assert errors == {oidc.UNUSABLE}


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.9.10", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "0.0.0.0",
    "169.254.1.1", "fe80::1", "fd12:3456::1", "224.0.0.1", "ff02::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1",
    "2002:7f00:1::1", "64:ff9b::a00:1",
])
def test_private_addresses_are_refused_unless_allowed(settings, address):
    ip = ipaddress.ip_address(address)
    assert not outbound.address_allowed(settings.model_copy(update={"idp_allow_private_addresses": False}), ip)
    assert outbound.address_allowed(settings.model_copy(update={"idp_allow_private_addresses": True}), ip)


@pytest.mark.parametrize("address", ["169.254.169.254", "fd00:ec2::254", "100.100.100.200", "::ffff:169.254.169.254"])
def test_cloud_metadata_addresses_are_refused_even_when_private_ones_are_allowed(settings, address):
    ip = ipaddress.ip_address(address)
    for allow in (True, False):
        assert not outbound.address_allowed(settings.model_copy(update={"idp_allow_private_addresses": allow}), ip)


def test_public_addresses_are_allowed(settings):
    strict = settings.model_copy(update={"idp_allow_private_addresses": False})
    for address in ("93.184.216.34", "8.8.8.8", "2606:4700::1111"):
        assert outbound.address_allowed(strict, ipaddress.ip_address(address))


class _Provider:
    """A discovery document on loopback that counts its requests and the Host header it was asked for."""

    def __init__(self, *, redirect: bool = False):
        self.hits: list[str] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.hits.append(self.headers.get("Host", ""))
                if redirect:
                    self.send_response(302)
                    self.send_header("Location", f"{provider.issuer}/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                base = provider.issuer
                body = json.dumps({"issuer": base, "authorization_endpoint": f"{base}/auth", "token_endpoint": f"{base}/token",
                                   "jwks_uri": f"{base}/jwks"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.issuer = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def provider() -> Iterator[_Provider]:
    p = _Provider()
    yield p
    p.close()


def test_a_refused_address_is_never_connected_to_and_the_setting_allows_it(settings, engine, scim_org, provider):
    strict = settings.model_copy(update={"idp_allow_private_addresses": False})
    for issuer in (provider.issuer, f"http://localhost:{provider.port}"):
        with pytest.raises(ValueError, match="discovery document"):
            oidc.configure(engine, strict, scim_org.slug, issuer=issuer, client_id="a", client_secret="b")
    assert provider.hits == []
    done = oidc.configure(engine, settings, scim_org.slug, issuer=provider.issuer, client_id="a", client_secret="b")
    assert done["issuer"] == provider.issuer and len(provider.hits) == 1


def test_redirects_are_not_followed(settings, engine, scim_org):
    p = _Provider(redirect=True)
    try:
        with pytest.raises(ValueError) as refused:
            oidc.configure(engine, settings, scim_org.slug, issuer=p.issuer, client_id="a", client_secret="b")
        assert str(refused.value) == oidc.UNUSABLE and len(p.hits) == 1
    finally:
        p.close()


def test_every_resolved_address_is_checked_and_the_connection_is_pinned(settings, provider, monkeypatch):
    lookups: list[str] = []
    real = socket.getaddrinfo

    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if host == "127.0.0.1":  # the connection itself, to the address the check chose
            return real(host, port, *args, **kwargs)
        lookups.append(host)
        addresses = {"mixed.idp.test": ["93.184.216.34", "127.0.0.1"], "idp.test": ["127.0.0.1"]}[host]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    monkeypatch.setattr(outbound.socket, "getaddrinfo", resolve)
    strict = settings.model_copy(update={"idp_allow_private_addresses": False})
    with pytest.raises(outbound.Unreachable):  # one public address does not excuse a private one
        outbound.call(strict, "org", "GET", f"http://mixed.idp.test:{provider.port}/x")
    answer = outbound.call(settings, "org", "GET", f"http://idp.test:{provider.port}/x")
    # resolved once, by the check; the request went to the checked address under its own name
    assert answer.status_code == 200 and lookups == ["mixed.idp.test", "idp.test"]
    assert provider.hits == [f"idp.test:{provider.port}"]


def test_the_admin_api_gives_one_message_for_every_port(settings, engine: Engine, scim_org: ScimOrg, ports, server):
    token = admin.create_admin_token(engine, scim_org.slug, "ssrf-test")
    details = set()
    with httpx.Client(base_url=f"{server}/admin/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30) as api:
        for name, port in ports.items():
            if name == "silent":  # the served ingest keeps its default read timeout; the in-process tests cover it
                continue
            saml_reply = api.put("/org/sso/saml", json={"metadata_url": f"http://127.0.0.1:{port}/metadata"})
            oidc_reply = api.put("/org/sso/oidc", json={"issuer": f"http://127.0.0.1:{port}", "client_id": "a",
                                                        "client_secret": "b"})
            assert saml_reply.status_code == oidc_reply.status_code == 400, (saml_reply.text, oidc_reply.text)
            details.add((saml_reply.json()["detail"], oidc_reply.json()["detail"]))
    assert details == {(saml_metadata.UNUSABLE, oidc.UNUSABLE)}


def test_the_cli_refuses_loopback_by_default_with_the_same_message(settings, scim_org: ScimOrg, ports):
    env = {**os.environ, **to_env(settings), "PROVISIONER_IDP_ALLOW_PRIVATE_ADDRESSES": "false"}
    for port in (ports["postgres"], ports["nothing"]):
        done = subprocess.run(
            [sys.executable, "-m", "cli", "sso", "configure", scim_org.slug, "--saml-metadata-url",
             f"http://127.0.0.1:{port}/metadata"], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode != 0 and saml_metadata.UNUSABLE in " ".join(done.stderr.split()), done.stderr


def _tls_server(tmp_path, name: str) -> tuple[ThreadingHTTPServer, str]:
    """An https server on loopback whose self-signed certificate names `name`; returns it and the cert's path."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, str(cert_path)


def test_a_pinned_https_connection_still_checks_the_certificate_against_the_name(settings, tmp_path, monkeypatch):
    server, cert = _tls_server(tmp_path, "idp.test")
    real = socket.getaddrinfo
    monkeypatch.setattr(outbound.socket, "getaddrinfo", lambda host, port, *a, **k: real(
        "127.0.0.1" if host in ("idp.test", "impostor.test") else host, port, *a, **k))
    monkeypatch.setattr(outbound, "_ssl", ssl.create_default_context(cafile=cert))
    port = server.server_address[1]
    try:
        assert outbound.call(settings, "org", "GET", f"https://idp.test:{port}/").content == b"ok"
        with pytest.raises(outbound.Unreachable):  # same address, another name: the certificate does not name it
            outbound.call(settings, "org", "GET", f"https://impostor.test:{port}/")
    finally:
        server.shutdown()
        server.server_close()
