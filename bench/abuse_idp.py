"""A hostile org's identity provider on loopback: discovery answers at once, everything else waits."""

import asyncio
import contextlib
import json
import threading
from dataclasses import dataclass, field


@dataclass
class SlowIdp:
    """An OpenID Provider whose token endpoint, JWKS and metadata answer after `delay` seconds
    (the issue's IdP that waits 8 s); its discovery document is quick, so an org can be pointed at it."""

    port: int
    delay: float = 8.0
    hits: dict[str, int] = field(default_factory=dict)
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.base_events.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _document(self) -> dict[str, object]:
        return {
            "issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"], "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        }

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ValueError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1].split("?")[0]
                length = next((int(v) for k, _, v in (ln.partition(":") for ln in lines[1:]) if k.lower() == "content-length"), 0)
                if length:
                    await reader.readexactly(length)
                self.hits[path] = self.hits.get(path, 0) + 1
                if path == "/.well-known/openid-configuration":
                    status, body = 200, self._document()
                else:  # the token endpoint, JWKS, metadata: all of them slow
                    await asyncio.sleep(self.delay)
                    status, body = 400, {"error": "invalid_grant"}
                data = json.dumps(body).encode()
                reply = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
                writer.write(reply.encode() + data)
                await writer.drain()
        writer.close()

    def start(self) -> "SlowIdp":
        """Serve on 127.0.0.1:port from a thread of its own (its own event loop)."""
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port))
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name="slow-idp")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the slow IdP did not start")
        return self

    def stop(self) -> None:
        if self._loop and self._server:
            self._loop.call_soon_threadsafe(self._server.close)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(timeout=5)
