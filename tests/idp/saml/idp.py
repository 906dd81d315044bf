"""A SAML 2.0 identity provider for the tests: pysaml2's IdP (`saml2.server.Server`) on loopback.

    python idp.py --port PORT --key KEY.pem --cert CERT.pem [--sha1]

Endpoints (all on http://127.0.0.1:PORT):
- GET  /metadata           the IdP's metadata (entity id, HTTP-Redirect SSO URL, signing cert)
- POST /sp                 register a service provider: its metadata XML as the body
- GET  /sso/redirect       SP-initiated: an AuthnRequest via HTTP-Redirect; answers a login form
- POST /login              the login form (fields `key`, `user`): answers the auto-submitting
                           HTTP-POST form that carries the signed Response to the SP's ACS
- GET  /idp-init?sp=ENTITY&user=EMAIL[&relay_state=..][&lifetime=SECONDS]
                           IdP-initiated sign-in ("the link provided by your identity provider")

Assertions are signed with RSA-SHA256/SHA-256, or RSA-SHA1/SHA-1 with --sha1. The process
prints "ready" on stdout once it listens.
"""

import argparse
import html
import shutil
import sys
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.assertion import Policy
from saml2.config import IdPConfig
from saml2.metadata import entity_descriptor
from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_EMAILADDRESS, NameID
from saml2.server import Server
from saml2.xmldsig import DIGEST_SHA1, DIGEST_SHA256, SIG_RSA_SHA1, SIG_RSA_SHA256

PASSWORD = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"


def make_server(base: str, key: str, cert: str) -> Server:
    config = IdPConfig()
    config.load(
        {
            "entityid": f"{base}/metadata",
            "service": {
                "idp": {
                    "name": "Test IdP",
                    "endpoints": {"single_sign_on_service": [(f"{base}/sso/redirect", BINDING_HTTP_REDIRECT)]},
                    "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
                    "want_authn_requests_signed": False,
                    "policy": {"default": {"lifetime": {"minutes": 5}, "name_form": NAME_FORMAT_URI}},
                }
            },
            "key_file": key,
            "cert_file": cert,
            "xmlsec_binary": shutil.which("xmlsec1"),
            "metadata": {},
        }
    )
    return Server(config=config)


def _handler(
    base: str, idp: Server, pending: dict[str, tuple[dict, str | None]], respond: Callable[..., bytes]
) -> type[BaseHTTPRequestHandler]:
    """The HTTP endpoints of the IdP (see the module docstring) over its pysaml2 server."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_):  # quiet
            pass

        def reply(self, status: int, body: bytes, ctype: str = "text/html; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            try:
                if url.path == "/metadata":
                    self.reply(200, str(entity_descriptor(idp.config)).encode(), "application/samlmetadata+xml")
                elif url.path == "/sso/redirect":
                    request = idp.parse_authn_request(q["SAMLRequest"], BINDING_HTTP_REDIRECT)
                    key = uuid.uuid4().hex
                    pending[key] = (idp.response_args(request.message, [BINDING_HTTP_POST]), q.get("RelayState"))
                    form = (
                        f'<form method="post" action="{base}/login"><input type="hidden" name="key" value="{key}">'
                        '<input name="user"><button>Sign in</button></form>'
                    )
                    self.reply(200, form.encode())
                elif url.path == "/idp-init":
                    acs = idp.metadata.assertion_consumer_service(q["sp"], BINDING_HTTP_POST)[0]["location"]
                    resp_args = {"in_response_to": None, "destination": acs, "sp_entity_id": q["sp"]}
                    lifetime = int(q["lifetime"]) if "lifetime" in q else None
                    self.reply(200, respond(resp_args, q["user"], q.get("relay_state"), lifetime))
                else:
                    self.reply(404, b"not found")
            except Exception as exc:  # the tests read the message
                self.reply(400, html.escape(f"{type(exc).__name__}: {exc}").encode())

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            try:
                if self.path == "/sp":
                    idp.metadata.load("inline", body)
                    self.reply(204, b"")
                elif self.path == "/login":
                    form = {k: v[0] for k, v in parse_qs(body).items()}
                    resp_args, relay_state = pending.pop(form["key"])
                    self.reply(200, respond(resp_args, form["user"], relay_state))
                else:
                    self.reply(404, b"not found")
            except Exception as exc:
                self.reply(400, html.escape(f"{type(exc).__name__}: {exc}").encode())

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--sha1", action="store_true", help="sign with RSA-SHA1 and SHA-1 digests")
    args = parser.parse_args()
    base = f"http://127.0.0.1:{args.port}"
    idp = make_server(base, args.key, args.cert)
    sign_alg, digest_alg = (SIG_RSA_SHA1, DIGEST_SHA1) if args.sha1 else (SIG_RSA_SHA256, DIGEST_SHA256)
    pending: dict[str, tuple[dict, str | None]] = {}  # login form key -> (response args, RelayState)

    def respond(resp_args: dict, user: str, relay_state: str | None, lifetime: int | None = None) -> bytes:
        policy = None
        if lifetime is not None:
            policy = Policy({"default": {"lifetime": {"seconds": lifetime}, "name_form": NAME_FORMAT_URI}}, mds=idp.metadata)
        response = idp.create_authn_response(
            {"mail": [user], "givenName": [user.split("@")[0]]},
            userid=user,
            name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=user),
            authn={"class_ref": PASSWORD},
            sign_assertion=True,
            sign_response=False,
            sign_alg=sign_alg,
            digest_alg=digest_alg,
            release_policy=policy,
            **resp_args,
        )
        http_args = idp.apply_binding(
            BINDING_HTTP_POST, str(response), resp_args["destination"], relay_state or "", response=True
        )
        return http_args["data"].encode() if isinstance(http_args["data"], str) else http_args["data"]

    server = HTTPServer(("127.0.0.1", args.port), _handler(base, idp, pending, respond))
    print("ready", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
