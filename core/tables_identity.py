"""The tables of who a person is and what they pay: the SaaS's accounts and their conflicts with
members, the email domains orgs verified and their invitations, the IdP subjects members sign in
as, and the seat ledger. Part of the one schema (core.tables, whose metadata they share)."""

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import UUID

from core.metadata import NOW as _now
from core.metadata import metadata

# The IdP subjects a member signs in as (OIDC `iss` + `sub`, SAML issuer + NameID), bound at their
# first sign-in through that IdP; later sign-ins match on the binding before any email.
member_identities = Table(
    "member_identities",
    metadata,
    Column("org_id", UUID(as_uuid=False), ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
    Column("issuer", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("member_id", UUID(as_uuid=False), ForeignKey("members.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), **_now),
    PrimaryKeyConstraint("org_id", "issuer", "subject"),
    UniqueConstraint("member_id", "issuer", name="ux_member_identities_member_issuer"),
)

# The seat ledger: one row per (org, member) ever billed, written by the billing worker only. The
# primary key makes a second first login of one member impossible; `state` moves held -> released
# -> held ... by conditional updates only, so a restore without a release cannot happen;
# `version` is the member's position in the ledger (1: the first login), the `resourceversion` of
# its billing events.
seats = Table(
    "seats",
    metadata,
    Column("org_id", UUID(as_uuid=False), nullable=False),
    Column("member_id", UUID(as_uuid=False), nullable=False),
    Column("state", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("first_login_at", DateTime(timezone=True), nullable=False),
    Column("first_login_event_id", UUID(as_uuid=False), nullable=False, unique=True),
    Column("updated_at", DateTime(timezone=True), **_now),
    PrimaryKeyConstraint("org_id", "member_id"),
    CheckConstraint("state IN ('held', 'released')", name="ck_seats_state"),
    Index("ix_seats_org_state", "org_id", "state"),
)

# Sign-ins accepted by ingest that will take a seat once the membership worker applies them (in
# orgs with a seat limit): counted with the active members, so two sign-ins at once cannot both
# take the last seat. The worker deletes the claim when it applies the sign-in.
seat_claims = Table(
    "seat_claims",
    metadata,
    Column("org_id", UUID(as_uuid=False), ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
    Column("sign_in_id", UUID(as_uuid=False), nullable=False),
    Column("member_id", UUID(as_uuid=False)),
    Column("created_at", DateTime(timezone=True), **_now),
    PrimaryKeyConstraint("org_id", "sign_in_id"),
    Index("ux_seat_claims_member", "org_id", "member_id", unique=True, postgresql_where=text("member_id IS NOT NULL")),
)

# Accounts of the SaaS, which exist outside any org (people who signed up on their own) until an
# org acquires one (`org_id`). Emails compare case-insensitively.
accounts = Table(
    "accounts",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("email", Text, nullable=False),
    Column("email_ci", Text, nullable=False, unique=True),
    Column("display_name", Text),
    Column("org_id", UUID(as_uuid=False), ForeignKey("orgs.id", ondelete="SET NULL")),
    Column("created_at", DateTime(timezone=True), **_now),
)

# A member whose email belongs to an account outside the org: open until acquired or dismissed.
conflicts = Table(
    "conflicts",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("org_id", UUID(as_uuid=False), ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
    Column("member_id", UUID(as_uuid=False), nullable=False),
    Column("account_id", UUID(as_uuid=False), nullable=False),
    Column("email_ci", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("error", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), **_now),
    Column("resolved_at", DateTime(timezone=True)),
    Column("resolved_by", Text),
    UniqueConstraint("org_id", "member_id", "account_id", name="ux_conflicts_member_account"),
    Index("ix_conflicts_org_status", "org_id", "status"),
)

# The email domains an org claims: a DNS TXT challenge (`challenge`) proves control (`method`
# `dns`), or support staff vouch for it (`support`, `verified_by` says who). A domain is verified
# by at most one org (the partial unique index); any number of orgs may have it pending.
org_domains = Table(
    "org_domains",
    metadata,
    Column("org_id", UUID(as_uuid=False), ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
    Column("domain", Text, nullable=False),  # lower-cased, IDNA (A-labels)
    Column("challenge", Text, nullable=False),
    Column("verified_at", DateTime(timezone=True)),
    Column("method", Text),
    Column("verified_by", Text),
    Column("created_at", DateTime(timezone=True), **_now),
    PrimaryKeyConstraint("org_id", "domain"),
    CheckConstraint("method IS NULL OR method IN ('dns', 'support')", name="ck_org_domains_method"),
    CheckConstraint("(verified_at IS NULL) = (method IS NULL)", name="ck_org_domains_verified_method"),
    Index("ux_org_domains_verified", "domain", unique=True, postgresql_where=text("verified_at IS NOT NULL")),
)

# An org's invitation to the person behind an account it may not acquire (one per conflict): the
# app asks the person, and their consent makes the account the member.
invitations = Table(
    "invitations",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("org_id", UUID(as_uuid=False), ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
    Column("conflict_id", UUID(as_uuid=False), ForeignKey("conflicts.id", ondelete="CASCADE"), nullable=False),
    Column("member_id", UUID(as_uuid=False), ForeignKey("members.id", ondelete="CASCADE"), nullable=False),
    Column("account_id", UUID(as_uuid=False), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("status", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), **_now),
    Column("accepted_at", DateTime(timezone=True)),
    Column("actor", Text, nullable=False),
    CheckConstraint("status IN ('pending', 'accepted')", name="ck_invitations_status"),
    UniqueConstraint("conflict_id", name="ux_invitations_conflict"),
    Index("ix_invitations_account_status", "account_id", "status"),
)
