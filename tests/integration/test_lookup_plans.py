"""A new org's `eq` lookups read by the key's index, whatever the planner believes of the org.

An org that was not in the table's statistics at the last ANALYZE is estimated at one row, and
the lookups once chose the index ordered by id and read every user of the org for each lookup
(migration 0017). The state is built here as it happens: another org's users analyzed, then a new
org's users written since; each lean lookup statement (ingest/scim/lean.py) is then explained
for the new org and must use the key's index as its index condition, and read a handful of
buffers, not the org's users.
"""

import uuid

import pytest
from sqlalchemy import text

from domain import orgs
from ingest.scim.cost import CostLimits
from ingest.scim.lean import lookups

pytestmark = pytest.mark.integration

USERS = """
INSERT INTO scim_resources (org_id, id, resource_type, version, data, user_name_ci, external_id)
SELECT :org, md5(:org || i::text), 'User', 1,
       jsonb_build_object('schemas', jsonb_build_array('urn:ietf:params:scim:schemas:core:2.0:User'),
                          'userName', 'u' || i || '@plans.example', 'externalId', 'ext-' || i),
       'u' || i || '@plans.example', 'ext-' || i
FROM generate_series(1, :n) AS i
"""
COST = CostLimits(max_attributes=100, max_values=1000, max_members=1000, max_operations=100)


def test_a_new_orgs_lookups_use_the_keys_index(engine):
    analyzed, _ = orgs.create(engine, "plans-" + uuid.uuid4().hex[:8])
    new, _ = orgs.create(engine, "plans-" + uuid.uuid4().hex[:8])
    with engine.begin() as conn:
        conn.execute(text(USERS), {"org": analyzed.id, "n": 20_000})
    with engine.begin() as conn:
        conn.execute(text("ANALYZE scim_resources"))
    try:
        with engine.connect() as conn, conn.begin() as tx:
            conn.execute(text(USERS), {"org": new.id, "n": 5_000})  # uncommitted: no ANALYZE can see them
            expected = {"username": ("ux_scim_resources_user_name", "u4321@plans.example"),
                        "externalid": ("ix_scim_resources_external_id", "ext-4321")}
            for name, statement in lookups(COST).items():
                index, value = expected[name]
                compiled = statement.compile(dialect=conn.dialect)
                params = {**compiled.params, "org": new.id, "value": value}
                plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + str(compiled), params).scalar()
                scans = list(_scans(plan[0]["Plan"]))
                assert [s["Index Name"] for s in scans] == [index], (name, scans)
                assert scans[0]["Actual Rows"] == 1, name
                assert scans[0]["Shared Hit Blocks"] + scans[0].get("Shared Read Blocks", 0) < 20, (name, scans[0])
            tx.rollback()
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM scim_resources WHERE org_id = :o"), {"o": analyzed.id})


def _scans(node):
    if node.get("Relation Name") == "scim_resources":
        yield node
    for child in node.get("Plans", []):
        yield from _scans(child)
