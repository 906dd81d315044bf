"""Single sign-on per org: OpenID Connect (oidc.py) and SAML 2.0 (saml.py).

Each protocol module exposes `routes(settings, engine) -> list[Route]` (mounted by
`ingest.app.create_app`) and `configure(engine, settings, slug, ...) -> dict` (used by the CLI
and the admin API). A verified sign-in is handed to `ingest.logins.record`.
"""
