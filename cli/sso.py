"""`provisioner sso configure`: set up an org's OIDC/SAML connections and print what the IdP admin pastes."""

import json
from pathlib import Path
from typing import Annotated

import typer

from cli._common import fail, load_settings
from core.db import make_engine

sso_app = typer.Typer(no_args_is_help=True, help="Single sign-on (OIDC, SAML) per org.")


@sso_app.command("configure")
def configure(
    slug: str,
    oidc_issuer: str = typer.Option(None, help="OpenID Provider issuer (exact match against the ID token's iss)"),
    oidc_client_id: str = typer.Option(None),
    oidc_client_secret: str = typer.Option(None),
    saml_metadata: Annotated[Path | None, typer.Option(help="IdP metadata XML file")] = None,
    saml_metadata_url: str = typer.Option(None, help="IdP metadata URL"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Configure OIDC and/or SAML for an org; prints redirect/ACS URLs and SP metadata location."""
    settings = load_settings()
    engine = make_engine(settings)
    out: dict[str, object] = {}
    try:
        if oidc_issuer or oidc_client_id or oidc_client_secret:
            from ingest.sso import oidc

            out["oidc"] = oidc.configure(
                engine, settings, slug, issuer=oidc_issuer, client_id=oidc_client_id, client_secret=oidc_client_secret
            )
        if saml_metadata or saml_metadata_url:
            from ingest.sso import saml

            xml = saml_metadata.read_text() if saml_metadata else None
            out["saml"] = saml.configure(engine, settings, slug, metadata_xml=xml, metadata_url=saml_metadata_url)
    except ValueError as exc:  # one message for every failure to fetch from the IdP, as in the admin API
        fail(str(exc))
    if not out:
        fail("give --oidc-* and/or --saml-metadata[-url] options")
    # Indented by default: a person copies these URLs into the IdP's console.
    typer.echo(json.dumps(out, indent=None if as_json else 2))
