"""The public half of the Security Event Tokens the signals worker pushes: the key set receivers
verify SETs with (`/.well-known/jwks.json`) and the transmitter's metadata
(`/.well-known/ssf-configuration`, OpenID Shared Signals Framework 1.0). Both are public and
cacheable; the signing key itself never leaves `events.security_event_token`."""

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.settings import Settings
from events import security_event_token as tokens


def signal_routes(settings: Settings) -> list[Any]:
    signer = tokens.signer_for(settings)
    headers = {"Cache-Control": "public, max-age=300"}

    async def jwks(_: Request) -> Response:
        return JSONResponse(signer.jwks(), headers=headers, media_type="application/jwk-set+json")

    async def configuration(_: Request) -> Response:
        return JSONResponse(tokens.transmitter_configuration(signer, settings.public_url), headers=headers)

    return [Route("/.well-known/jwks.json", jwks), Route("/.well-known/ssf-configuration", configuration)]
