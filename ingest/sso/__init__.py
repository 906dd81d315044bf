"""Single sign-on per org: OpenID Connect (oidc.py) and SAML 2.0 (saml.py).

Each protocol module exposes `routes(settings, engine) -> list[Route]` (mounted by
`ingest.app.create_app`) and `configure(engine, settings, slug, ...) -> dict` (used by the CLI
and the admin API). A verified sign-in is handed to `ingest.logins.record`. Every call to an org's
IdP goes through outbound.py (address checks, timeouts, a cap per org); the OIDC pages run on
bulkhead.py's threads; saml_metadata.py parses and fetches SAML IdP metadata.
"""
