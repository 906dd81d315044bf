"""Lookups a new org cannot misplan

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 18:30:00

A lookup by `userName` or `externalId` names its org and a key. The planner estimates the org's
rows from the table's statistics, and an org that was not there at the last ANALYZE (a new org's
first sync: how every org starts) is estimated at one row. At one row every index that starts with
`org_id` costs the same, and `(org_id, resource_type, id)` also spares the `ORDER BY id`: on a
table with one org of 300,000 users analyzed and a new org of 20,000, `userName eq` and
`externalId eq` read all 20,000 of the new org's users for every lookup (12-13 ms, growing with
the org: a first sync quadratic in its size). PostgreSQL's autovacuum re-analyzes a table after
10% of it changed, which on a large deployment a whole first sync may not reach.

- `ix_scim_resources_external_id` gains `id`: an `externalId eq` lookup ordered by id is served
  by it alone, so it is the cheapest plan whatever the estimate (the `userName eq` lookup drops
  its `ORDER BY`: the key is unique, ingest/scim/lean.py).
- These tables are analyzed after every 5,000 changed rows, whatever their size, so a new org is
  in the statistics soon after its first writes (with autovacuum's default one-minute naptime,
  within a minute; deploy/local sets 10 s). ANALYZE samples 30,000 rows: ~0.1-0.3 s.
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

TABLES = ("scim_resources", "members", "scim_group_members", "member_group_links")


def upgrade() -> None:
    op.drop_index("ix_scim_resources_external_id", table_name="scim_resources")
    op.create_index("ix_scim_resources_external_id", "scim_resources", ["org_id", "resource_type", "external_id", "id"],
                    postgresql_where=sa.text("external_id IS NOT NULL"))
    op.drop_index("ix_scim_resources_display_name", table_name="scim_resources")
    op.create_index("ix_scim_resources_display_name", "scim_resources", ["org_id", "resource_type", "display_name_ci"],
                    postgresql_where=sa.text("display_name_ci IS NOT NULL"))
    for table in TABLES:
        op.execute(
            f"ALTER TABLE {table} SET (autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 5000)"
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RESET (autovacuum_analyze_scale_factor, autovacuum_analyze_threshold)")
    op.drop_index("ix_scim_resources_external_id", table_name="scim_resources")
    op.create_index("ix_scim_resources_external_id", "scim_resources", ["org_id", "resource_type", "external_id"])
    op.drop_index("ix_scim_resources_display_name", table_name="scim_resources")
    op.create_index("ix_scim_resources_display_name", "scim_resources", ["org_id", "resource_type", "display_name_ci"])
