"""Single sign-on on the console's Provisioning page: what is connected, the values to paste into
the IdP (redirect URI, ACS URL, entity id, metadata URL), and connecting an OpenID Provider or a
SAML IdP through the same checks as the admin API and the CLI (`ingest.sso.oidc.configure`,
`ingest.sso.saml.configure`), and test sign-ins: a sign-in through the IdP that reports what it
sent and the verdict, signing no one in (`ingest.sso.trial`)."""

import html
from typing import Any

from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from domain import sso_config
from ingest.console.session import PREFIX, Session
from ingest.console.web import SECURITY_HEADERS, Console
from ingest.sso import oidc, outbound, saml, trial

BUSY = "Your identity provider is already being called; try again in a moment."


def card(console: Console, conn: Connection, session: Session) -> dict[str, Any]:
    """The SSO card's values: each protocol's connection (or None) and the URLs the IdP needs."""
    slug = session.org.slug
    o, s = sso_config.get(conn, session.org.id, "oidc"), sso_config.get(conn, session.org.id, "saml")
    o_urls, s_urls = oidc.urls(console.settings, slug), saml.urls(console.settings, slug)
    return {
        "oidc": {"issuer": o.get("issuer"), "client_id": o.get("client_id")} if o else None,
        "saml": {"idp_entity_id": s.get("idp_entity_id"), "metadata_url": s.get("metadata_url")} if s else None,
        "oidc_urls": {"Redirect URI": o_urls["redirect_uri"], "Sign-in URL": o_urls["login_url"]},
        "saml_urls": {
            "ACS URL (Reply URL)": s_urls["acs_url"], "Entity ID (Identifier)": s_urls["entity_id"],
            "SP metadata URL": s_urls["metadata_url"], "Sign-in URL": s_urls["login_url"],
        },
    }  # fmt: skip


def connect_oidc(console: Console, request: Request, session: Session, form: dict[str, str]) -> Response:
    """POST /console/sso/oidc: connect an OpenID Provider (its discovery must name exactly this issuer)."""
    fields = {name: form.get(name, "").strip() for name in ("issuer", "client_id", "client_secret")}
    return _connect(console, session, "OpenID Connect", oidc.configure, fields)


def connect_saml(console: Console, request: Request, session: Session, form: dict[str, str]) -> Response:
    """POST /console/sso/saml: connect a SAML IdP from its metadata URL (https) or the XML pasted."""
    url, xml = form.get("metadata_url", "").strip(), form.get("metadata_xml", "").strip()
    if bool(url) == bool(xml):
        return console.flash(session, PREFIX, kind="error", text="Give either the IdP's metadata URL or its metadata XML.")
    fields = {"metadata_url": url} if url else {"metadata_xml": xml}
    return _connect(console, session, "SAML", saml.configure, fields)


def _connect(console: Console, session: Session, name: str, configure: Any, fields: dict[str, str]) -> Response:
    try:
        configure(console.engine, console.settings, session.org.slug, actor=session.actor, **fields)
    except outbound.Busy:
        return console.flash(session, PREFIX, kind="error", text=BUSY)
    except ValueError as exc:  # the protocol's own check, in words an admin can act on
        return console.flash(session, PREFIX, kind="error", text=f"{name} was not connected: {exc}.")
    text = f"{name} is connected. Paste the values below into your identity provider."
    return console.flash(session, PREFIX, kind="ok", text=text)


def start_test(console: Console, request: Request, session: Session, form: dict[str, str]) -> Response:
    """POST /console/sso/{protocol}/test: off to the IdP; it comes back to the result page, no one signed in."""
    protocol, slug, actor = request.path_params["protocol"], session.org.slug, session.actor
    starts = {"oidc": oidc.start_test, "saml": saml.start_test}
    if protocol not in starts:
        return console.error_page(request, session, 404, "There is no such sign-in protocol.")
    try:
        started = starts[protocol](console.settings, console.engine, slug, actor)
    except outbound.Busy:
        return console.flash(session, PREFIX, kind="error", text=BUSY)
    except (oidc.Refused, saml.Rejected):  # the org has no connection of this protocol
        return console.flash(session, PREFIX, kind="error", text="Connect single sign-on first, then test it.")
    except oidc.ProviderError as exc:
        return console.flash(session, PREFIX, kind="error", text=f"The test sign-in could not start: {exc}.")
    return _leave_for(started)


def _leave_for(started: Response) -> Response:
    """A page that moves the browser on to the IdP: the console's CSP (`form-action 'self'`) keeps a
    form's POST from being redirected to another origin, so the redirect is not answered as one."""
    url = html.escape(started.headers["location"], quote=True)
    body = (f'<!doctype html><meta charset=utf-8><meta http-equiv="refresh" content="0;url={url}">'
            f'<title>Test sign-in</title><p>On to your identity provider… <a href="{url}">Continue</a></p>\n')
    page = HTMLResponse(body, headers={**SECURITY_HEADERS, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
    for cookie in started.headers.getlist("set-cookie"):  # the OIDC sign-in's browser binding
        page.headers.append("set-cookie", cookie)
    return page


def test_result(console: Console, request: Request, session: Session, form: dict[str, str]) -> Response:
    """GET /console/sso/tests/{test_id}: what the IdP sent, and whether the sign-in would be accepted and why."""
    with console.engine.connect() as conn:
        report = trial.load(conn, session.org.id, request.path_params["test_id"])
    if report is None:
        text = "This test sign-in is unknown, or older than an hour. Run the test again from the Provisioning page."
        return console.error_page(request, session, 404, text)
    return console.page(request, "sso_test.html", session, report=report)
