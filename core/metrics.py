"""Every Prometheus metric, declared once (prometheus-client). Processes record them in their
middleware, runtime and relay; handlers stay free of metric calls.

Naming follows Prometheus conventions: `_total` counters, `_seconds` in base units, and label
sets bounded by the code (routes, methods, statuses, event types, outcomes, topics,
partitions). Org ids and emails are never labels: an org label would grow with customers;
per-org figures come from PostgreSQL (the admin API and `provisioner members list`).
"""

from prometheus_client import Counter, Gauge, Histogram

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_PIPELINE = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)

# -- ingest --------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "provisioner_http_requests_total", "HTTP requests served by ingest.", ["route", "method", "status"]
)
HTTP_DURATION = Histogram(
    "provisioner_http_request_duration_seconds", "Time to serve an HTTP request.", ["route", "method"], buckets=_LATENCY
)
AUTH_FAILURES = Counter(
    "provisioner_auth_failures_total", "Requests refused for a missing or wrong credential.", ["kind"]
)
RATE_LIMITED = Counter("provisioner_rate_limited_total", "SCIM requests answered 429 by the per-org limit.", ["route"])
AUDIT_ROWS = Counter(
    "provisioner_scim_audit_rows_total",
    "SCIM audit rows by outcome: inline (in the write's transaction), batched, unattributed (no org "
    "credential, not stored), dropped_full (queue full), dropped_error (database error).",
    ["outcome"],
)
AUDIT_PRUNED = Counter("provisioner_scim_audit_pruned_total", "SCIM audit rows deleted after the retention period.")
SCIM_ORGS = Gauge(
    "provisioner_scim_orgs",
    "Orgs per IdP health state (healthy, quiet, failing_auth, failing_requests, not_connected, disabled); "
    "which orgs: GET /admin/v1/org/health or `provisioner org health`.",
    ["state"],
)

# -- outbox and relay -----------------------------------------------------------------------
OUTBOX_PENDING = Gauge("provisioner_outbox_pending_rows", "Outbox rows not yet published to Kafka.")
OUTBOX_OLDEST_AGE = Gauge(
    "provisioner_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row (0 when empty)."
)
RELAY_PUBLISHED = Counter("provisioner_relay_published_total", "Events the relay published.", ["topic"])
RELAY_ERRORS = Counter("provisioner_relay_publish_errors_total", "Failed publish attempts (retried).")
RELAY_RECOVERED = Counter(
    "provisioner_relay_recovered_total", "Outbox rows found already on Kafka after a crash, not re-published."
)
RELAY_LEADER = Gauge("provisioner_relay_leader", "1 while this relay holds the leader lock.")
PUBLISH_DELAY = Histogram(
    "provisioner_outbox_publish_delay_seconds",
    "Seconds from an event's commit to its publication on Kafka.",
    ["topic"],
    buckets=_PIPELINE,
)
COMMIT_TO_BILLING = Histogram(
    "provisioner_login_to_billing_published_seconds",
    "Seconds from a first login (SSO or app) to its billing event being published (SLO).",
    buckets=_PIPELINE,
)

# -- workers ------------------------------------------------------------------------------
EVENTS_CONSUMED = Counter(
    "provisioner_events_consumed_total",
    "Events a worker consumed, by type and outcome (applied, duplicate, stale, pending, ignored, dead_lettered).",
    ["consumer", "type", "outcome"],
)
HANDLER_DURATION = Histogram(
    "provisioner_handler_duration_seconds", "Time to apply one event in its transaction.", ["consumer"], buckets=_LATENCY
)
BATCH_DURATION = Histogram(
    "provisioner_batch_duration_seconds", "Time to apply one polled batch, commit included.", ["consumer"], buckets=_LATENCY
)
COMMIT_TO_APPLIED = Histogram(
    "provisioner_commit_to_applied_seconds",
    "Seconds from an event's commit (SCIM, SSO or app request) to its effect being committed by a worker (SLO).",
    ["consumer"],
    buckets=_PIPELINE,
)
CONSUMER_LAG = Gauge(
    "provisioner_consumer_lag", "Records behind the high watermark, per partition.", ["group", "topic", "partition"]
)
REBALANCES = Counter("provisioner_consumer_rebalances_total", "Partition assignments received.", ["group"])
DEAD_LETTERS = Counter("provisioner_dead_letters_total", "Records set aside as dead letters.", ["consumer"])

# -- domain (read from PostgreSQL at scrape time) -------------------------------------------
OPEN_CONFLICTS = Gauge("provisioner_open_conflicts", "Email conflicts waiting for an admin.")
DEAD_LETTER_DEPTH = Gauge("provisioner_dead_letter_depth", "Dead letters not redriven yet.", ["consumer"])
RECONCILE_DRIFTS = Gauge(
    "provisioner_reconcile_drifts",
    "Drifts between SCIM users, members, seats and the billing topic the periodic reconcile found, by kind "
    "(`provisioner reconcile SLUG` lists and repairs them).",
    ["kind"],
)
SECURITY_EVENTS = Counter(
    "provisioner_security_events_total",
    "Session-revoked SET pushes to the operator's receiver, by outcome: delivered, retried, dead_lettered.",
    ["outcome"],
)
SECURITY_EVENT_DELIVERY = Histogram(
    "provisioner_security_event_delivery_seconds",
    "Seconds from the change that deactivated or removed a member (its SCIM write or admin action) to the "
    "receiver accepting its session-revoked SET (SLO).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0),
)
SECURITY_EVENTS_PENDING = Gauge(
    "provisioner_security_events_pending", "Session-revoked SETs to be pushed, or retried after a failed push."
)
SECURITY_EVENTS_DEAD = Gauge(
    "provisioner_security_events_dead", "Session-revoked SETs given up on (refused, or failing every attempt): not revoked."
)
BILLING_FIRST_LOGINS = Counter(
    "provisioner_billing_first_logins_total", "First-login billing events emitted (staged with their fact)."
)
BILLING_VERIFY_MISMATCHES = Gauge(
    "provisioner_billing_verify_mismatches",
    "Missing, unexpected and duplicated billing events found by the last `billing verify` run.",
)
