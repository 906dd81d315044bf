"""The admin API's token routes: the org's admin and SCIM tokens listed (prefix, created, last used) and
revoked now, e.g. after a leak. A revoked token stops working within the auth cache's seconds."""

from typing import Literal

from pydantic import BaseModel, Field

from domain import admin, tokens
from ingest.admin.deps import Admin, Api, resource_router
from ingest.admin.errors import ERRORS, documented

router = resource_router("tokens")

_ORG_KINDS = ("admin", "scim")


class TokenOut(BaseModel):
    """A token as lists show it: never the secret, only its first characters."""

    id: str
    kind: Literal["admin", "scim"]
    prefix: str = Field(description="The token's first characters (`adm_Ab12Cd34`); `legacy#...` for older tokens.")
    name: str
    created_at: str
    last_used_at: str | None = Field(None, description="Recorded at most once a minute.")
    revoked_at: str | None = None
    expires_at: str | None = Field(None, description="SCIM tokens replaced by a rotation stop working then.")
    live: bool = Field(description="Neither revoked nor expired.")


class TokenList(BaseModel):
    tokens: list[TokenOut]


@router.get("/org/tokens", response_model=TokenList, responses=ERRORS)
def list_tokens(who: Admin, api: Api) -> TokenList:
    """The organisation's admin and SCIM tokens, oldest first."""
    with api.transaction(who) as (uow, org):
        found = [t for kind in _ORG_KINDS for t in tokens.listing(uow.conn, kind, org.id)]
    return TokenList(tokens=[TokenOut(**t) for t in found])


@router.delete("/org/tokens/{token_id}", response_model=TokenOut, responses=documented(404, 422))
def revoke_token(token_id: str, who: Admin, api: Api) -> TokenOut:
    """Revoke one of the organisation's admin or SCIM tokens now; revoking an admin token ends its console
    sessions. Revoking a revoked token changes nothing."""
    with api.transaction(who) as (uow, org):
        return TokenOut(**admin.revoke_token(uow, who.actor, token_id, _ORG_KINDS, org))
