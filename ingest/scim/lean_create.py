"""The write IdPs send most, `POST /Users`, committed in one statement and one round trip.

Entra ID and Okta create every user by a POST of one User (after the lookup `ingest.scim.lean`
serves). The library's way costs a validation of the body, a dump, a second validation of the row
read back, a deep copy to publish it and a last dump; and the storage's way is a transaction of
six round trips to PostgreSQL (BEGIN, the statement timeout, the resource, its outbox row, its
audit row, COMMIT), each a wake-up of both processes on this box's two cores.

`LeanCreate` keeps the library's validation (`ScimService.read_creation`: the same model, the same
errors) and the storage's rules (`PgStorage.stored_data`, `columns`), then writes the resource, its
lifecycle events and its audit row in one statement, committed on its own (autocommit: the one
statement is the transaction, so all three rows exist or none does). The answer is built from the
JSON it stored, as `LeanReads` answers a GET of it: the library's dump of the stored row.

It answers only what it can answer exactly as the library would; for anything else `serve`
returns None before writing anything, and the library handles the request: another method or
endpoint, `/Me`, any query parameter, a stored body the
lean answer cannot reproduce (`LeanReads.servable`: a reference, an attribute not returned by
default), and a `userName` already taken (the statement inserts nothing; the library then answers
the 409 as it always does). `tests/integration/test_lean_create.py` compares its answers, rows and
events with the library's.
"""

import uuid
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import orjson
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse
from scim2_server.routing import Operation

from ingest import audit
from ingest.scim import changes
from ingest.scim.deadline import Deadline
from ingest.scim.lean import LeanReads
from ingest.scim.storage import PgStorage

# the resource, then its events and its audit row only if it was inserted (a taken userName
# inserts nothing: the unique index answers the uniqueness question in the same statement)
_CREATE = """
WITH r AS (
  INSERT INTO scim_resources (org_id, id, resource_type, version, data, user_name_ci, external_id, display_name_ci,
                              emails_ci, created_at, updated_at)
  VALUES (%(org)s, %(id)s, 'User', 1, %(data)s::jsonb, %(user_name_ci)s, %(external_id)s, %(display_name_ci)s,
          %(emails_ci)s::text[], %(now)s, %(now)s)
  ON CONFLICT (org_id, user_name_ci) WHERE resource_type = 'User' DO NOTHING
  RETURNING id),
o AS (
  INSERT INTO outbox (event_id, topic, key, payload)
  SELECT e.event_id, e.topic, e.key, e.payload
  FROM r, jsonb_to_recordset(%(events)s::jsonb) AS e(event_id uuid, topic text, key text, payload jsonb)
  ON CONFLICT (event_id) DO NOTHING),
a AS (
  INSERT INTO scim_audit (org_id, at, method, path, query, status, duration_ms, user_agent, request_id, client_address)
  SELECT x.org_id, x.at, x.method, x.path, x.query, x.status, x.duration_ms, x.user_agent, x.request_id, x.client_address
  FROM r, jsonb_to_recordset(%(audit)s::jsonb) AS x(org_id uuid, at timestamptz, method text, path text, query text,
       status int, duration_ms float8, user_agent text, request_id text, client_address text))
SELECT id FROM r
"""


class LeanCreate:
    """POST of one User to the User endpoint, for one service (the `LeanReads` of the same service)."""

    def __init__(self, reads: LeanReads, topics: dict[str, str]):
        self.reads = reads
        self.service = reads.service
        self.topics = topics

    def serve(self, request: ScimRequest, storage: PgStorage, conn: Any, deadline: Deadline) -> ScimResponse | None:
        """The 201, committed; or None, with nothing written, when the library must answer. `conn`
        is in autocommit: the statement is its own transaction."""
        if request.method.upper() != "POST" or request.query:
            return None
        target = self.service.match(request)
        if target.operation is not Operation.create or target.me or target.endpoint is None:
            return None
        if self.service.resource_type_at(target.endpoint) is not self.reads.user_type:
            return None
        with self.service.provider:  # the library's validation, so the library's errors
            resource = self.service.read_creation(self.reads.user_type, request.body, request.header("Content-Type"))
        data, _, _ = storage.stored_data("User", resource)
        if not self.reads.servable(data):
            return None
        deadline.check()  # validation may have used it up: then write nothing
        resource_id, now = uuid.uuid4().hex, datetime.now(UTC)
        events = [
            {"event_id": e.id, "topic": self.topics[e.kind.topic_role], "key": e.key, "payload": e.to_cloudevent()}
            for e in changes.user_events(storage.org, resource_id, None, data, 1)
        ]
        row = audit.staged_row(int(HTTPStatus.CREATED), storage.org.correlation_id or "")
        params = {"org": storage.org.id, "id": resource_id, "data": orjson.dumps(data).decode(), "now": now,
                  **storage.columns("User", data), "events": orjson.dumps(events).decode(),
                  "audit": orjson.dumps([row] if row else []).decode()}
        created = conn.exec_driver_sql(_CREATE, params).first()  # in autocommit: committed with its three rows
        if created is None:
            return None  # userName taken: nothing was written, and the library answers the 409
        if row:
            audit.committed(inline=True)
        body = self.reads.body(request.base_url, resource_id, data, now, now, 1)
        location = body["meta"]["location"]
        return ScimResponse(HTTPStatus.CREATED, body,
                            {"Content-Location": location, "ETag": body["meta"]["version"], "Location": location})

