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
the org). Migration 0006 has these tables analyzed often, which shortens the time a new org is
unknown but does not end it: until autovacuum next looks (a minute by default) and the org's
rows pass the threshold, each lookup reads the org.

- The `userName eq` lookup drops its `ORDER BY` (the key is unique in the org:
  ingest/scim/lean.py).
- The externalId and displayName indexes become partial (`... IS NOT NULL`: they serve only `eq`
  lookups, which imply it), so a userName lookup cannot take them for its own, and the externalId
  one ends with `id`, so an `externalId eq` lookup ordered by id is served by it alone.
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_scim_resources_external_id", table_name="scim_resources")
    op.create_index("ix_scim_resources_external_id", "scim_resources", ["org_id", "resource_type", "external_id", "id"],
                    postgresql_where=sa.text("external_id IS NOT NULL"))
    op.drop_index("ix_scim_resources_display_name", table_name="scim_resources")
    op.create_index("ix_scim_resources_display_name", "scim_resources", ["org_id", "resource_type", "display_name_ci"],
                    postgresql_where=sa.text("display_name_ci IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_scim_resources_external_id", table_name="scim_resources")
    op.create_index("ix_scim_resources_external_id", "scim_resources", ["org_id", "resource_type", "external_id"])
    op.drop_index("ix_scim_resources_display_name", table_name="scim_resources")
    op.create_index("ix_scim_resources_display_name", "scim_resources", ["org_id", "resource_type", "display_name_ci"])
