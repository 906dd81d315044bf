"""Service tokens: how the SaaS app's backend calls the internal API (logins, accounts)."""

from sqlalchemy import Connection, Engine, select

from core import credentials
from core.tables import service_tokens


def create(engine: Engine, name: str) -> str:
    token = credentials.new_token("svc")
    with engine.begin() as conn:
        conn.execute(service_tokens.insert().values(token_hash=credentials.token_hash(token), name=name))
    return token


def authenticate(conn: Connection, token: str) -> str | None:
    """The name of the service a token belongs to, or None."""
    digest = credentials.token_hash(token)
    row = conn.execute(select(service_tokens).where(service_tokens.c.token_hash == digest)).first()
    if row is None or not credentials.matches(token, row.token_hash):
        return None
    return str(row.name)
