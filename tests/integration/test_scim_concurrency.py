"""Concurrent SCIM writes on one group, over real HTTP and the real PostgreSQL.

A group PATCH reads the group's members, then writes the difference; deleting a user removes
it from its groups. Interleaved, the PATCH used to see a member that was deleted under it and
answer 400 "not resources of this org" for a change it never asked for. Users being deleted
must lock their groups first, so every PATCH here succeeds and the members end up exact.
"""

import concurrent.futures

import pytest

from tests.integration.test_scim_api import GROUP, PATCH, new_user

pytestmark = pytest.mark.integration


def test_group_patches_and_deletes_of_other_members_interleave_cleanly(scim_org):
    client = scim_org.client
    doomed = [new_user(client, f"doomed-{i}@example.test")["id"] for i in range(40)]
    joining = [new_user(client, f"joining-{i}@example.test")["id"] for i in range(40)]
    group = client.post("/Groups", json={"schemas": [GROUP], "displayName": "busy", "members": [{"value": u} for u in doomed]})
    assert group.status_code == 201, group.text
    gid = group.json()["id"]

    def add(user_id):
        body = {"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": user_id}]}]}
        return client.patch(f"/Groups/{gid}", json=body).status_code

    def remove(user_id):
        return client.delete(f"/Users/{user_id}").status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        adds = pool.map(add, joining)
        deletes = pool.map(remove, doomed)
        added, deleted = list(adds), list(deletes)
    assert set(deleted) == {204}
    assert set(added) <= {200, 204}, added
    members = {m["value"] for m in client.get(f"/Groups/{gid}").json().get("members", [])}
    assert members == set(joining)
