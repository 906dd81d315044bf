"""The small HTTP server of the relay and the workers: /metrics, /healthz and /readyz.

Liveness is the process answering at all; readiness is the process's own check (for a worker:
it can reach PostgreSQL and has joined its consumer group; for the relay: it can reach
PostgreSQL and its publishing loop is making progress). Kubernetes probes and `make up` use them.
"""

import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes every few seconds: no access log
        pass


def start(host: str, port: int, ready: Callable[[], bool]) -> None:
    metrics_app = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b'{"status":"ok"}']
        if path == "/readyz":
            try:
                ok = ready()
            except Exception:
                ok = False
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")])
            return [b'{"status":"ready"}' if ok else b'{"status":"not ready"}']
        body: Iterable[bytes] = metrics_app(environ, start_response)
        return body

    server = make_server(host, port, app, server_class=_Server, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
