"""The reference: scim2-server's in-memory storage behind its own ASGI application.

`BENCH_REFERENCE_USERS=N` stores N users before it serves (`seed-<i>@bench.test`, externalId
`ext-seed-<i>`, as `bench/wrk/lookup.lua` looks them up and as the lookup scenario seeds ours),
validated by the application's own model and stored by the storage's `create`, which indexes
them as a POST would."""

import os

import orjson
from scim2_server.applications.asgi import ASGIApplication
from scim2_server.memory import AsyncInMemoryStorage
from scim2_server.utils import load_default_provider

storage = AsyncInMemoryStorage()
app = ASGIApplication(storage, load_default_provider())


def _seed(count: int) -> None:
    user_type = next(rt for rt in app.provider.resource_types if rt.name == "User")
    for i in range(count):
        name = f"seed-{i}@bench.test"
        body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name, "externalId": f"ext-seed-{i}",
                "active": True, "displayName": f"Seed {i}", "name": {"givenName": "Seed", "familyName": str(i)},
                "emails": [{"value": name, "type": "work", "primary": True}]}
        user = app.service.read_creation(user_type, orjson.dumps(body), "application/scim+json")  # as a POST is read
        storage.storage.create(user_type, user)


_seed(int(os.environ.get("BENCH_REFERENCE_USERS", "0")))
