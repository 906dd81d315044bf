"""The floor of a durable SCIM create in Python on this box: raw ASGI, no framework, one statement
(resource + outbox row + audit row, as ingest writes them) and its commit per request, psycopg2
in a small thread pool. `FLOOR_MODE=scim` also validates and dumps the body with scim2-models, as
any SCIM server must. Run by `python -m bench.floor`; never part of the product."""

import asyncio
import datetime
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import psycopg2

MODE = os.environ.get("FLOOR_MODE", "sql")
_local = threading.local()
_pool = ThreadPoolExecutor(8)
_INSERT = """
WITH r AS (
  INSERT INTO scim_resources (org_id, id, resource_type, version, data, user_name_ci, external_id, display_name_ci, emails_ci)
  VALUES (%(org)s, %(id)s, 'User', 1, %(data)s, lower(%(un)s), %(ext)s, lower(%(dn)s), %(emails)s)
  ON CONFLICT (org_id, user_name_ci) WHERE resource_type = 'User' DO NOTHING RETURNING id),
o AS (INSERT INTO outbox (event_id, topic, key, payload) SELECT %(eid)s, 'scim', %(key)s, %(payload)s FROM r RETURNING id)
INSERT INTO scim_audit (org_id, at, method, path, status, duration_ms, request_id)
SELECT %(org)s, now(), 'POST', '/Users', 201, 1.0, %(rid)s FROM r
RETURNING (SELECT id FROM r)
"""


def _validated(doc: dict[str, Any], resource_id: str) -> dict[str, Any]:
    if MODE != "scim":
        return dict(doc, id=resource_id)
    import email_validator
    from scim2_models import Context, User

    email_validator.SPECIAL_USE_DOMAIN_NAMES = [n for n in email_validator.SPECIAL_USE_DOMAIN_NAMES if n != "test"]
    user = User.model_validate(doc, scim_ctx=Context.RESOURCE_CREATION_REQUEST)
    user.id = resource_id
    return user.model_dump(scim_ctx=Context.RESOURCE_CREATION_RESPONSE)


def _write(params: dict[str, Any]) -> Any:
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = psycopg2.connect(os.environ["FLOOR_DSN"])
    with conn.cursor() as cur:
        cur.execute(_INSERT, params)
        row = cur.fetchone()
    conn.commit()
    return row


async def _body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    doc = orjson.loads(await _body(receive))
    resource_id, org = uuid.uuid4().hex, os.environ["FLOOR_ORG"]
    now = datetime.datetime.now(datetime.UTC).isoformat()
    out = _validated(doc, resource_id)
    out["meta"] = {"resourceType": "User", "created": now, "lastModified": now, "version": 'W/"1"',
                   "location": "/Users/" + resource_id}  # fmt: skip
    data = orjson.dumps(out).decode()
    params = {
        "org": org, "id": resource_id, "data": data, "un": doc["userName"], "ext": doc.get("externalId"),
        "dn": doc.get("displayName"), "emails": [e["value"].lower() for e in doc.get("emails", [])],
        "eid": str(uuid.uuid4()), "key": f"{org}:{resource_id}", "rid": resource_id,
        "payload": orjson.dumps({"type": "io.provisioner.user.created", "data": out}).decode(),
    }  # fmt: skip
    row = await asyncio.get_running_loop().run_in_executor(_pool, _write, params)
    await send({"type": "http.response.start", "status": 201 if row else 409,
                "headers": [(b"content-type", b"application/scim+json")]})  # fmt: skip
    await send({"type": "http.response.body", "body": data.encode()})
