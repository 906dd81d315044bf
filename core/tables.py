"""The PostgreSQL schema, declared once; Alembic migrations are generated from it."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from core.metadata import NOW as _now
from core.metadata import metadata as metadata

# Who a person is and what they pay (accounts, conflicts, verified domains, invitations, IdP
# bindings, the seat ledger) is declared beside, on the same metadata, and importable from here.
from core.tables_identity import accounts as accounts
from core.tables_identity import conflicts as conflicts
from core.tables_identity import invitations as invitations
from core.tables_identity import member_identities as member_identities
from core.tables_identity import org_domains as org_domains
from core.tables_identity import seat_claims as seat_claims
from core.tables_identity import seats as seats
from core.tables_signals import held_events as held_events
from core.tables_signals import preview_orgs as preview_orgs
from core.tables_signals import security_events as security_events

orgs = Table(
    "orgs",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("slug", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("manual_provisioning", Boolean, nullable=False, server_default=text("true")),
    Column("sso_provisioning", Boolean, nullable=False, server_default=text("false")),
    Column("scim_enabled", Boolean, nullable=False, server_default=text("true")),
    # The org's plan: at most `seat_limit` billed seats (none: no limit); past it, `seat_policy`
    # `refuse` refuses the sign-in that would take a seat, `allow` bills it with a `seat.overage`.
    Column("seat_limit", Integer),
    Column("seat_policy", Text, nullable=False, server_default=text("'refuse'")),
    Column("created_at", DateTime(timezone=True), **_now),
    CheckConstraint("seat_limit IS NULL OR seat_limit >= 0", name="ck_orgs_seat_limit"),
    CheckConstraint("seat_policy IN ('refuse', 'allow')", name="ck_orgs_seat_policy"),
)

# A bearer token is kept only as its SHA-256; `expires_at` is its lifetime (SCIM tokens issued with one) or set
# when a newer token replaces it.
# Every kind of token has an `id` and a `prefix` (its first characters, not secret) to list and revoke it by,
# `last_used_at` (written at most once a minute) and `revoked_at` (revoked now, e.g. after a leak).
scim_tokens = Table(
    "scim_tokens",
    metadata,
    Column("token_hash", LargeBinary, primary_key=True),
    Column("id", UUID(as_uuid=False), nullable=False, unique=True, server_default=text("gen_random_uuid()")),
    Column("prefix", Text, nullable=False, server_default=text("''")),
    Column("org_id", UUID(as_uuid=False), ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), **_now),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("last_used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    # when the org was told this token expires: its `credential.expiring` event, or the rotation that replaced it
    Column("expiry_notice_at", DateTime(timezone=True)),
    Index("ix_scim_tokens_org", "org_id"),
)

# SCIM resources as the IdP sees them, with the attributes that filters look up by, extracted
# and indexed (RFC 7643: userName is case-insensitive, externalId is case-exact).
scim_resources = Table(
    "scim_resources",
    metadata,
    Column("org_id", UUID(as_uuid=False), ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
    Column("id", Text, nullable=False),
    Column("resource_type", Text, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("data", JSONB, nullable=False),
    Column("user_name_ci", Text),
    Column("external_id", Text),
    Column("display_name_ci", Text),
    Column("emails_ci", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("created_at", DateTime(timezone=True), **_now),
    Column("updated_at", DateTime(timezone=True), **_now),
    PrimaryKeyConstraint("org_id", "id"),
    Index(
        "ux_scim_resources_user_name",
        "org_id",
        "user_name_ci",
        unique=True,
        postgresql_where=text("resource_type = 'User'"),
    ),
    # for `eq` lookups only, so partial: a userName lookup cannot take them for its own (migration 0017)
    Index("ix_scim_resources_external_id", "org_id", "resource_type", "external_id", "id",
          postgresql_where=text("external_id IS NOT NULL")),
    Index("ix_scim_resources_display_name", "org_id", "resource_type", "display_name_ci",
          postgresql_where=text("display_name_ci IS NOT NULL")),
    Index("ix_scim_resources_emails", "emails_ci", postgresql_using="gin"),
    Index("ix_scim_resources_type_id", "org_id", "resource_type", "id"),
)

# Group members live in rows, so membership changes are inserts and deletes of single rows
# and two concurrent PATCHes can never lose each other's members.
scim_group_members = Table(
    "scim_group_members",
    metadata,
    Column("org_id", UUID(as_uuid=False), nullable=False),
    Column("group_id", Text, nullable=False),
    Column("member_id", Text, nullable=False),
    Column("member_type", Text, nullable=False, server_default="User"),
    Column("display", Text),
    Column("added_at", DateTime(timezone=True), server_default=text("clock_timestamp()"), nullable=False),
    PrimaryKeyConstraint("org_id", "group_id", "member_id"),
    Index("ix_scim_group_members_member", "org_id", "member_id"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("event_id", UUID(as_uuid=False), nullable=False, unique=True),
    Column("topic", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    # clock time, not the transaction's: members created in one batch keep their order in the pages
    Column("created_at", DateTime(timezone=True), server_default=func.clock_timestamp(), nullable=False),
)

# One row per (consumer, event): written in the same transaction as the event's effect.
processed_events = Table(
    "processed_events",
    metadata,
    Column("consumer", Text, nullable=False),
    Column("event_id", UUID(as_uuid=False), nullable=False),
    Column("processed_at", DateTime(timezone=True), **_now),
    PrimaryKeyConstraint("consumer", "event_id"),
)

# The org's membership, as the membership worker applies it from lifecycle events.
members = Table(
    "members",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("org_id", UUID(as_uuid=False), ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
    Column("scim_user_id", Text),
    # the IdP's id for the person (SCIM externalId, case-exact): a removed member re-created by the
    # IdP with the same externalId is the same person again
    Column("external_id", Text),
    Column("user_name", Text),
    Column("email", Text),
    Column("email_ci", Text),
    Column("display_name", Text),
    Column("given_name", Text),
    Column("family_name", Text),
    Column("status", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("seq", BigInteger, nullable=False, server_default=text("0")),
    # Incremented with every member event the worker emits (their resourceversion).
    Column("version", BigInteger, nullable=False, server_default=text("0")),
    Column("first_login_at", DateTime(timezone=True)),
    # The SaaS account this member is, once acquired; and the open email conflict, if any.
    Column("account_id", UUID(as_uuid=False)),
    Column("conflict_id", UUID(as_uuid=False)),
    Column("created_at", DateTime(timezone=True), **_now),
    Column("updated_at", DateTime(timezone=True), **_now),
    UniqueConstraint("org_id", "scim_user_id", name="ux_members_scim_user"),
    Index("ix_members_org_email", "org_id", "email_ci"),
    # the console's and the admin API's pages: (created_at, id) order, all or of one status
    Index("ix_members_org_created", "org_id", "created_at", "id"),
    Index("ix_members_org_status_created", "org_id", "status", "created_at", "id"),
    Index("ix_members_org_external_id", "org_id", "external_id"),
)


# Members per shown status (`conflict` while one is open), kept by statement triggers on `members`
# (migration 0011) in the writing transaction; no foreign key: an org's deletion deletes its members,
# whose trigger writes here last.
member_counts = Table(
    "member_counts",
    metadata,
    Column("org_id", UUID(as_uuid=False), nullable=False),
    Column("shown", Text, nullable=False),
    Column("tally", BigInteger, nullable=False),
    PrimaryKeyConstraint("org_id", "shown"),
)


member_groups = Table(
    "member_groups",
    metadata,
    Column("org_id", UUID(as_uuid=False), nullable=False),
    Column("group_id", Text, nullable=False),
    Column("display_name", Text),
    Column("deleted", Boolean, nullable=False, server_default=text("false")),
    Column("seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("org_id", "group_id"),
)

member_group_links = Table(
    "member_group_links",
    metadata,
    Column("org_id", UUID(as_uuid=False), nullable=False),
    Column("group_id", Text, nullable=False),
    Column("scim_user_id", Text, nullable=False),
    Column("present", Boolean, nullable=False),
    Column("seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("org_id", "group_id", "scim_user_id"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("consumer", Text, nullable=False),
    Column("topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("key", Text),
    Column("value", LargeBinary),
    Column("error", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), **_now),
    Column("redriven_at", DateTime(timezone=True)),
)


# Credentials of the SaaS app's own backend, for the internal API (logins, accounts).
service_tokens = Table(
    "service_tokens",
    metadata,
    Column("token_hash", LargeBinary, primary_key=True),
    Column("id", UUID(as_uuid=False), nullable=False, unique=True, server_default=text("gen_random_uuid()")),
    Column("prefix", Text, nullable=False, server_default=text("''")),
    Column("name", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), **_now),
    Column("last_used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    # the orgs the token may act for; NULL: every org
    Column("org_ids", ARRAY(UUID(as_uuid=False))),
)

# An org's SSO connection, one per protocol ("oidc", "saml"); `config` holds the IdP's settings.
sso_configs = Table(
    "sso_configs",
    metadata,
    Column("org_id", UUID(as_uuid=False), ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
    Column("protocol", Text, nullable=False),
    Column("config", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), **_now),
    PrimaryKeyConstraint("org_id", "protocol"),
)

# Sign-ins in flight: OIDC state/nonce/PKCE verifier, or a SAML AuthnRequest id (InResponseTo).
sso_states = Table(
    "sso_states",
    metadata,
    Column("state", Text, primary_key=True),
    Column("org_id", UUID(as_uuid=False), ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
    Column("protocol", Text, nullable=False),
    Column("data", JSONB, nullable=False, server_default=text("'{}'")),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# SAML assertion ids already consumed, kept until their NotOnOrAfter (replay protection).
saml_seen_assertions = Table(
    "saml_seen_assertions",
    metadata,
    Column("org_id", UUID(as_uuid=False), nullable=False),
    Column("assertion_id", Text, nullable=False),
    Column("not_on_or_after", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("org_id", "assertion_id"),
)

# Test sign-ins run from the console (ingest/sso/trial.py): what the IdP sent and the verdict, for an hour.
sso_test_results = Table(
    "sso_test_results",
    metadata,
    Column("id", Text, primary_key=True),
    Column("org_id", UUID(as_uuid=False), ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("report", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), **_now),
)

# A login whose member is not applied yet (its SCIM create is still in flight); applied when it is.
pending_logins = Table(
    "pending_logins",
    metadata,
    Column("org_id", UUID(as_uuid=False), nullable=False),
    Column("email_ci", Text, nullable=False),
    Column("event_id", UUID(as_uuid=False), nullable=False),
    Column("logged_in_at", DateTime(timezone=True), nullable=False),
    Column("method", Text, nullable=False),
    # the sign-in's id: its seat claim, if ingest made one, is released when the sign-in counts
    Column("sign_in_id", UUID(as_uuid=False)),
    Column("created_at", DateTime(timezone=True), **_now),
    PrimaryKeyConstraint("org_id", "email_ci"),
)


# Org admins' credentials for the admin API and console: never valid on SCIM, and vice versa.
admin_tokens = Table(
    "admin_tokens",
    metadata,
    Column("token_hash", LargeBinary, primary_key=True),
    Column("id", UUID(as_uuid=False), nullable=False, unique=True, server_default=text("gen_random_uuid()")),
    Column("prefix", Text, nullable=False, server_default=text("''")),
    Column("org_id", UUID(as_uuid=False), ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), **_now),
    Column("last_used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
)

# A console sign-in: the cookie holds a random session id, kept here only as its SHA-256. Sign-out sets
# `ended_at`; revoking the admin token ends its sessions (they are checked against it on every request).
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id_hash", LargeBinary, primary_key=True),
    Column("org_id", UUID(as_uuid=False), ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
    Column("admin_token_id", UUID(as_uuid=False), ForeignKey("admin_tokens.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), **_now),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    Index("ix_console_sessions_token", "admin_token_id"),
)

# What happened to a member, from which source, when: the admin's "recent activity".
member_activity = Table(
    "member_activity",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("org_id", UUID(as_uuid=False), nullable=False),
    Column("member_id", UUID(as_uuid=False), nullable=False),
    Column("event_id", UUID(as_uuid=False), nullable=False),
    Column("type", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("summary", JSONB, nullable=False),
    Column("at", DateTime(timezone=True), **_now),
    Index("ix_member_activity_member", "org_id", "member_id", "id"),
)

# Every SCIM request an org's credential made, accepted or refused: who (user agent, address),
# what (method, path, the query with its values redacted), the answer and how long it took.
# Is the org's IdP still syncing: moved forward by the SCIM audit writer from every SCIM request it
# records (domain/idp_health.py names the state). One row per org that ever sent one.
scim_health = Table(
    "scim_health",
    metadata,
    Column("org_id", UUID(as_uuid=False), ForeignKey("orgs.id", ondelete="CASCADE"), primary_key=True),
    Column("last_request_at", DateTime(timezone=True)),
    Column("last_success_at", DateTime(timezone=True)),
    Column("last_write_at", DateTime(timezone=True)),
    Column("last_auth_failure_at", DateTime(timezone=True)),
    Column("last_failure_at", DateTime(timezone=True)),
    Column("last_failure_status", Integer),
    Column("usual_interval_seconds", Float),
)

# Bodies are never kept. Rows older than `audit_retention_days` are pruned by ingest.
scim_audit = Table(
    "scim_audit",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("org_id", UUID(as_uuid=False), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("method", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("query", Text),
    Column("status", Integer, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("user_agent", Text),
    Column("request_id", Text, nullable=False),
    Column("client_address", Text),
    Index("ix_scim_audit_org_at", "org_id", "at", "id"),
    # rows arrive in time order, so a BRIN index serves the retention delete at almost no cost
    Index("ix_scim_audit_at_brin", "at", postgresql_using="brin"),
)

# The per-org SCIM rate limit that every ingest process shares (ingest/rate_limit.py): one token
# bucket per org. UNLOGGED: a bucket is worth nothing after a crash (it refills in seconds), so its
# one write per request skips the WAL.
scim_rate_buckets = Table(
    "scim_rate_buckets",
    metadata,
    Column("org_id", UUID(as_uuid=False), ForeignKey("orgs.id", ondelete="CASCADE"), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("refilled_at", DateTime(timezone=True), nullable=False),
    prefixes=["UNLOGGED"],
)
