"""Ingest's request metrics and access log, as one ASGI middleware.

The `route` label is a small fixed vocabulary derived from the path (`scim:Users`,
`sso:saml:acs`, `admin`, ...), never the raw path, so org slugs and ids never become labels.
"""

import logging
import time
from typing import Any

from core import metrics

log = logging.getLogger("provisioner.access")

_SCIM_ENDPOINTS = {"Users", "Groups", "ServiceProviderConfig", "Schemas", "ResourceTypes", "Bulk", "Me", ".search"}
_PLAIN = {"/healthz", "/readyz", "/metrics", "/internal/v1/logins", "/internal/v1/accounts"}


def route_of(path: str) -> str:
    """A bounded label for a request path."""
    if path in _PLAIN:
        return path
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "scim":
        rest = parts[2:]
        if rest and rest[0] == "v2":
            rest = rest[1:]
        endpoint = rest[0] if rest else "root"
        return f"scim:{endpoint if endpoint in _SCIM_ENDPOINTS else 'other'}"
    if len(parts) >= 4 and parts[0] == "sso" and parts[2] in ("oidc", "saml"):
        return f"sso:{parts[2]}:{parts[3] if parts[3] in ('login', 'callback', 'acs', 'metadata') else 'other'}"
    if parts and parts[0] in ("admin", "console", "app"):
        return parts[0]
    return "other"


def _auth_kind(route: str) -> str:
    return route.split(":", 1)[0].strip("/").split("/")[0] or "other"


class RequestMetrics:
    """Counts and times every request; logs one line per request with its correlation id."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = route_of(scope["path"])
        method = scope["method"]
        started = time.perf_counter()
        status = {"code": 500, "request_id": None}

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"x-request-id":
                        status["request_id"] = value.decode()
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            code = status["code"]
            metrics.HTTP_REQUESTS.labels(route, method, str(code)).inc()
            metrics.HTTP_DURATION.labels(route, method).observe(elapsed)
            if code == 401:
                metrics.AUTH_FAILURES.labels(_auth_kind(route)).inc()
            if code == 429:
                metrics.RATE_LIMITED.labels(route).inc()
            if route not in ("/metrics", "/healthz", "/readyz"):
                log.info(
                    "request",
                    extra={
                        "route": route,
                        "method": method,
                        "status": code,
                        "duration_ms": round(elapsed * 1000, 2),
                        "correlation_id": status["request_id"],
                    },
                )
