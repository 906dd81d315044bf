"""SCIM tokens with a lifetime: when the org was told one ends

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 23:00:00

`expiry_notice_at`: set by the `credential.expiring` warning (`domain/token_expiry.py`), or by the
rotation that replaced the token (which needs none). Tokens from before this revision have no
lifetime, or an end a rotation set: they are marked noticed, so none is warned about late.
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("scim_tokens", sa.Column("expiry_notice_at", sa.DateTime(timezone=True)))
    op.execute("UPDATE scim_tokens SET expiry_notice_at = now() WHERE expires_at IS NOT NULL")


def downgrade() -> None:
    op.drop_column("scim_tokens", "expiry_notice_at")
