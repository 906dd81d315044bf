"""The SAML IdP of the tests: pysaml2's (tests/idp/saml/idp.py) as a child process on loopback,
with keys made here; `connect` points an org at it and registers our SP there."""

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ingest.sso import saml
from tests.conftest import _free_port, wait_for

IDP_DIR = Path(__file__).resolve().parents[1] / "idp" / "saml"


def _key_pair(directory: Path) -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-idp")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(directory / "key.pem"), str(directory / "cert.pem")


def _start_idp(tmp: Path, *flags: str):
    setup = subprocess.run(["bash", str(IDP_DIR / "setup.sh")], capture_output=True, text=True)
    if setup.returncode != 0:
        pytest.fail(f"tests/idp/saml/setup.sh failed: {setup.stderr}")
    key, cert = _key_pair(tmp)
    port = _free_port()
    log = open(tmp / "idp.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, str(IDP_DIR / "idp.py"), "--port", str(port), "--key", key, "--cert", cert, *flags],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, (tmp / "idp.log").read_text()
        try:
            return httpx.get(f"{url}/metadata", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, timeout=30, message="SAML IdP")
    return proc, url, log


@pytest.fixture(scope="session")
def idp(tmp_path_factory):
    proc, url, log = _start_idp(tmp_path_factory.mktemp("saml-idp"))
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


def connect(settings, engine, server, slug: str, idp_url: str) -> dict:
    """Configure the org's SAML from the IdP's metadata URL; register our SP at the IdP."""
    out = saml.configure(engine, settings, slug, metadata_url=f"{idp_url}/metadata")
    sp_metadata = httpx.get(out["metadata_url"], timeout=10)
    assert sp_metadata.status_code == 200, sp_metadata.text
    assert httpx.post(f"{idp_url}/sp", content=sp_metadata.content, timeout=10).status_code == 204
    return out


def form_of(page: httpx.Response) -> tuple[str, dict[str, str]]:
    """The action and fields of the IdP's auto-submitting HTTP-POST form."""
    assert page.status_code == 200, page.text
    action = unescape(re.search(r'<form[^>]*action="([^"]+)"', page.text).group(1))
    fields = {
        unescape(m.group(1)): unescape(m.group(2))
        for m in re.finditer(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page.text)
    }
    return action, fields
