"""Settings of every process, read once in each entry point and passed down."""

from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """One place for configuration; environment variables are prefixed `PROVISIONER_`.

    `DATABASE_URL` and `KAFKA_BOOTSTRAP_SERVERS` are also read without the prefix, the
    names every tool in the ecosystem uses.
    """

    model_config = SettingsConfigDict(env_prefix="PROVISIONER_", extra="ignore", populate_by_name=True)

    database_url: str = Field(
        "postgresql://provisioner:provisioner@127.0.0.1:5433/provisioner",
        validation_alias=AliasChoices("DATABASE_URL", "PROVISIONER_DATABASE_URL"),
    )
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "PROVISIONER_KAFKA_BOOTSTRAP_SERVERS"),
    )
    public_url: str = "http://127.0.0.1:8000"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    http_workers: int = 1  # ingest processes behind one port (stateless; scale out freely)

    topic_lifecycle: str = "provisioner.lifecycle"
    topic_members: str = "provisioner.members"
    topic_billing: str = "billing"
    topic_dead_letter: str = "provisioner.dead-letter"
    topic_partitions: int = 6
    # 1 for the single local broker; 3 on a cluster (`stack.sh cluster env`). Min ISR 0 means
    # derived: 1 for one replica, 2 for three; an acks=all write is then on two brokers before
    # it is acknowledged, and one broker may be lost without refusing writes.
    topic_replication: int = 1
    topic_min_insync_replicas: int = 0

    def min_insync_replicas(self) -> int:
        return self.topic_min_insync_replicas or max(1, min(2, self.topic_replication - 1))

    # Retention (`retention.ms`) that `provisioner topics create` gives each topic, and restores on
    # topics that exist; -1 keeps records forever. Billing is a ledger that `billing verify` and
    # billing systems read from the beginning: forever. The others carry personal data (emails)
    # and only need to outlast a consumer's outage: two weeks, a month for dead letters awaiting a
    # fix and a redrive.
    topic_retention_ms_lifecycle: int = 14 * 24 * 3600 * 1000
    topic_retention_ms_members: int = 14 * 24 * 3600 * 1000
    topic_retention_ms_billing: int = -1
    topic_retention_ms_dead_letter: int = 30 * 24 * 3600 * 1000

    @field_validator(
        "topic_retention_ms_lifecycle",
        "topic_retention_ms_members",
        "topic_retention_ms_billing",
        "topic_retention_ms_dead_letter",
    )
    @classmethod
    def _retention(cls, value: int) -> int:
        if value < 1 and value != -1:  # 0 would have Kafka delete every record at once
            raise ValueError("a topic retention is a positive number of milliseconds, or -1 (forever)")
        return value

    def topic_retention_ms(self) -> dict[str, int]:
        """`retention.ms` by topic role."""
        return {
            "lifecycle": self.topic_retention_ms_lifecycle,
            "members": self.topic_retention_ms_members,
            "billing": self.topic_retention_ms_billing,
            "dead_letter": self.topic_retention_ms_dead_letter,
        }

    token_overlap_seconds: int = 3600
    # A SCIM token issued with a lifetime gets one `credential.expiring` event this many days before it expires.
    scim_token_warning_days: float = Field(14.0, gt=0)
    # How long ingest trusts a verified SCIM or service token (and an org's SCIM toggle) before re-reading it.
    auth_cache_seconds: float = 5.0
    max_body_bytes: int = 1_048_576
    # The HTTP edge (ingest/http.py EdgeLimits, ingest/server.py): a request head must be complete
    # within header seconds of the connection (or of the last response on it), a body within body
    # seconds of its head; otherwise the connection is closed (a body gets 408 first).
    http_header_timeout_seconds: float = Field(10.0, gt=0)
    http_body_timeout_seconds: float = Field(30.0, gt=0)
    # How long a thread of the ingest process runs Python before another waiting thread gets the
    # interpreter (Python's default is 5 ms). A request that waits on PostgreSQL gives it up at every
    # statement and then waits this long to get it back behind a busy thread; shorter keeps one org's
    # CPU-heavy request from multiplying every other org's latency (docs/decisions.md, "Fair shares").
    # It applies while several orgs' SCIM requests share the process; while one org has it alone
    # (an initial sync), the switch interval is `http_switch_interval_alone_seconds`: the short one
    # costs that org ~20% of its write throughput (docs/decisions.md, "Ingest switches threads").
    http_switch_interval_seconds: float = Field(0.00025, gt=0, le=0.1)
    http_switch_interval_alone_seconds: float = Field(0.005, gt=0, le=0.1)
    # per org; at least 25/s (Entra's requirement); 0 turns the limit off
    scim_rate_limit_per_second: float = 100.0
    scim_rate_limit_burst: int = 200
    # one bucket per org in PostgreSQL that every ingest process spends from (ingest/rate_limit.py);
    # off: each process keeps its own, and N processes grant an org N times the rate
    scim_rate_limit_shared: bool = True
    max_results: int = 1000  # SCIM `count` cap, announced as filter.maxResults
    # How long an RFC 9865 cursor (`nextCursor`) of a SCIM list stays valid; announced as pagination.cursorTimeout.
    scim_cursor_timeout_seconds: int = Field(3600, gt=0)
    scim_lean_reads: bool = True  # common User reads from the stored JSON (ingest/scim/lean.py); off: all by the library
    # POST /Users in one statement and round trip (ingest/scim/lean_create.py), and group PATCHes of members
    # without the library's work on the whole group (ingest/scim/lean_patch.py); off: by the library and the storage
    scim_lean_writes: bool = True
    # SCIM filters (and PATCH paths) longer or more deeply nested are 400 invalidFilter (invalidPath)
    max_filter_length: int = 4096
    max_filter_depth: int = 10
    # SCIM cost limits (docs/operations.md, "SCIM cost limits"); over one is a 400 that changes nothing.
    # Attribute names in attributes/excludedAttributes: the User schema with its extension has ~100.
    scim_max_attributes: int = Field(100, ge=1)
    # Values in one multi-valued attribute of a resource (emails, phoneNumbers, addresses, ...).
    scim_max_values: int = Field(100, ge=1)
    # Members of one group: Entra and Okta push groups of thousands. The SCIM library copies the
    # whole group in memory to serve it (~0.3 ms per member measured): 10,000 keeps a GET within ~3 s.
    scim_max_members: int = Field(10_000, ge=1)
    scim_max_operations: int = Field(1000, ge=1)  # PATCH operations in one request
    # PATCH operations x the group's members: each operation is applied to the whole group (~20 us
    # per member measured), so 100 one-member operations on a 20,000-member group took 62 s.
    scim_max_patch_work: int = Field(200_000, ge=1)
    # Rows a filter that the indexes cannot narrow, or a sortBy, may load and evaluate in memory.
    scim_max_candidates: int = Field(10_000, ge=1)
    # Past this the request's database work is cancelled and it is answered 503.
    scim_request_deadline_seconds: float = Field(10.0, gt=0)
    # Fair shares of one ingest process while several orgs use it (ingest/scim/fairness.py): an
    # org's SCIM requests in progress at once (one more is 429), and the CPU time its requests may
    # use, refilled at this many CPU-seconds per second up to the burst (a request that finds its
    # org's budget spent is answered 429 with the Retry-After of the refill); a rate of 0: no budget.
    scim_max_in_flight_per_org: int = Field(2, ge=1)
    scim_org_cpu_per_second: float = Field(0.25, ge=0)
    scim_org_cpu_burst_seconds: float = Field(1.0, ge=0)
    # A request refused by an org's rate or CPU limit is answered this much later (its connection
    # waits, no thread does), at most this many at once per process: a flood over the limit then
    # costs about one answer per connection per delay.
    scim_refusal_delay_seconds: float = Field(1.0, ge=0)
    scim_refusal_delay_max: int = Field(256, ge=0)
    # Ingest pings a pooled connection only when it comes back after this long unused (core/db.py).
    db_ping_idle_seconds: float = Field(1.0, ge=0)
    # Session defaults of the ingest engine (`make_engine(..., bounded=True)`): PostgreSQL cancels a
    # statement running longer, and ends a session left idle inside a transaction that long. 0: none.
    ingest_statement_timeout_seconds: float = Field(30.0, ge=0)
    ingest_idle_in_transaction_seconds: float = Field(30.0, ge=0)
    db_pool_size: int = 10

    # SCIM audit trail: rows older than this are pruned (by ingest, hourly; or `provisioner audit prune`)
    audit_retention_days: int = Field(90, ge=1)
    # reads and refusals wait here to be written in batches; when it is full, rows are dropped (counted)
    audit_queue_size: int = Field(10_000, ge=1)
    audit_flush_seconds: float = Field(0.2, gt=0)
    audit_prune_interval_seconds: float = Field(3600.0, gt=0)
    # IdP health per org (domain/idp_health.py): a failure counts for this long; until an org's usual
    # interval between sync cycles is known, this stands in (Entra ID syncs every 40 minutes); ingest
    # counts the orgs per state for `provisioner_scim_orgs` this often
    idp_health_window_seconds: float = Field(300.0, gt=0)
    idp_health_usual_seconds: float = Field(2400.0, gt=0)
    idp_health_refresh_seconds: float = Field(15.0, gt=0)

    relay_batch_size: int = 500
    # The relay's producer: librdkafka's (confluent-kafka) or kafka-python's; same settings, same
    # placement of keys (docs/decisions.md "The relay publishes through librdkafka").
    relay_kafka_client: Literal["confluent-kafka", "kafka-python"] = "confluent-kafka"
    relay_poll_seconds: float = 0.02
    # Every Kafka call of the relay (flushing a batch, reading partition tails) gives up after this
    # long and starts over with a new producer; a relay whose loop makes no progress for
    # `relay_stall_seconds` (a client library stuck for good) exits, and is restarted.
    relay_kafka_timeout_seconds: float = Field(30.0, ge=20)  # >= the producer's request timeout (15 s) + linger
    relay_stall_seconds: float = Field(120.0, gt=0)
    consumer_group_prefix: str = "provisioner"
    worker_batch_size: int = 500
    # The workers' consume loop: kafka-python's consumer (workers/runtime.py) or faust-streaming's
    # agents on aiokafka (workers/faust_runtime.py); same handlers and guarantees (docs/decisions.md).
    worker_runtime: Literal["kafka-python", "faust"] = "kafka-python"
    # faust only: a batch is what arrived within this long, or worker_batch_size events if sooner
    worker_batch_wait_seconds: float = Field(0.02, gt=0, le=5)
    # The kafka-python runtime's consumer client: librdkafka's (confluent-kafka) or kafka-python's;
    # same group, offsets and fetch settings (docs/decisions.md "Workers consume through librdkafka").
    worker_kafka_client: Literal["confluent-kafka", "kafka-python"] = "confluent-kafka"
    # The workers' fetches (kafka-python runtime, either client): the broker answers when it has
    # this many bytes for the consumer, or after this long. Kafka's defaults (1 byte, 500 ms)
    # answer every few events at once: a fetch, a batch and an offset commit per few events under
    # a steady load. 64 KiB or 50 ms: a hop of at most 50 ms more when idle (docs/benchmarks.md).
    consumer_fetch_min_bytes: int = Field(65536, ge=1)
    consumer_fetch_max_wait_ms: int = Field(50, ge=0, le=5000)
    # A crashed worker's partitions move to the others after this long (Kafka's default is 45 s).
    consumer_session_timeout_ms: int = 10000
    # Static group membership (KIP-345): a worker restarted under the same instance id takes its
    # partitions back at once, instead of waiting for its dead predecessor's session to expire and
    # a rebalance. The id must be stable across restarts and unique per replica: empty means
    # "<hostname>-<group>" (one replica of each worker per host, as `provisioner run` runs them);
    # set it per replica when several run on one host (a second one would fence the first).
    consumer_static_membership: bool = True
    consumer_group_instance_id: str = ""
    # A Kafka client's reconnect back-off to a broker it lost (the relay's producer, the workers'
    # consumers) doubles from 50 ms up to this (kafka-python's default is 30 s, the Java client's 1 s).
    kafka_reconnect_backoff_max_ms: int = Field(1000, ge=50)

    def topics(self) -> dict[str, str]:
        """Topic name by role (the catalogue names roles; names are configuration)."""
        return {
            "lifecycle": self.topic_lifecycle,
            "members": self.topic_members,
            "billing": self.topic_billing,
            "dead_letter": self.topic_dead_letter,
        }

    metrics_host: str = "127.0.0.1"
    billing_verify_interval_seconds: float = 300.0
    # The billing worker's periodic `provisioner reconcile` of every org (report only: the
    # `provisioner_reconcile_drifts` gauge); 0 disables. Changes younger than the min age are left out.
    reconcile_interval_seconds: float = Field(3600.0, ge=0)
    reconcile_min_age_seconds: float = Field(300.0, ge=0)
    log_format: str = "json"
    log_level: str = "INFO"

    metrics_port_relay: int = 9101
    metrics_port_membership: int = 9102
    metrics_port_billing: int = 9103
    metrics_port_conflicts: int = 9104
    metrics_port_signals: int = 9105

    # Deprovisioning that revokes (workers/signals): a CAEP session-revoked SET (RFC 8417) pushed
    # (RFC 8935) to this receiver for every deactivated or removed member; empty: none is staged.
    caep_push_url: str = ""
    caep_push_authorization: SecretStr = SecretStr("")  # sent as the Authorization header, if set
    caep_audience: str = ""  # the SETs' `aud`; empty: the push URL
    caep_signing_key: SecretStr = SecretStr("")  # EC P-256 private key, PEM; empty: derived from secret_key
    caep_push_timeout_seconds: float = Field(5.0, gt=0, le=60)
    caep_push_max_attempts: int = Field(12, ge=1)
    caep_push_retry_base_seconds: float = Field(1.0, gt=0)
    caep_push_retry_max_seconds: float = Field(300.0, gt=0)
    caep_push_concurrency: int = Field(8, ge=1, le=64)
    caep_push_poll_seconds: float = Field(0.05, gt=0, le=10)
    caep_retention_days: float = Field(30.0, gt=0)  # delivered signals are forgotten after this long

    # Seals stored secrets (OIDC client secrets; core/sealed.py). Set it in every deployment: the
    # default only keeps a local stack working. Several keys, comma-separated: the first seals.
    secret_key: SecretStr = SecretStr("local-development-only-not-secret")

    # Where a successful sign-in sends the browser; `{org}` is replaced by the org's slug.
    app_url: str = "http://127.0.0.1:8000/app/{org}"
    sso_state_ttl_seconds: int = 600

    # Outbound calls to an org's IdP (OIDC discovery, JWKS, token endpoint; SAML metadata; ingest/sso/outbound.py):
    # short timeouts; at most `idp_calls_per_org` at once per org (a sign-in waits `idp_queue_seconds` for a
    # slot, then gets a 503 page); SSO pages run on their own `idp_threads` threads, never on SCIM's. IdP URLs
    # may not resolve to loopback, private, link-local, unique-local or multicast addresses unless allowed (a
    # lab IdP); cloud metadata addresses are refused even then.
    idp_connect_timeout_seconds: float = Field(3.0, gt=0, le=30)
    idp_read_timeout_seconds: float = Field(5.0, gt=0, le=60)
    idp_calls_per_org: int = Field(4, ge=1, le=100)
    idp_queue_seconds: float = Field(2.0, ge=0, le=30)
    idp_threads: int = Field(16, ge=1, le=200)
    idp_allow_private_addresses: bool = False

    # Where `domains verify` looks up a domain's TXT challenge: comma-separated IP addresses, each
    # optionally with a port (`10.0.0.2`, `127.0.0.1:5353`, `[::1]:5353`); empty: the system's resolver.
    dns_nameservers: str = ""
    dns_timeout_seconds: float = Field(3.0, gt=0)

    @field_validator("dns_nameservers")
    @classmethod
    def _valid_nameservers(cls, value: str) -> str:
        nameservers(value)
        return value

    def dns_nameserver_addresses(self) -> list[tuple[str, int]]:
        """`dns_nameservers` as (IP address, port) pairs; empty: use the system's resolver."""
        return nameservers(self.dns_nameservers)


def nameservers(spec: str) -> list[tuple[str, int]]:
    """Parse `10.0.0.2, 127.0.0.1:5353, [::1]:5353, ::1` into (address, port) pairs (port 53 by
    default); a host name or a bad port is a ValueError, since a resolver is given addresses."""
    import ipaddress

    found = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        host, port = item, "53"
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port = rest.removeprefix(":") or "53"
        elif item.count(":") == 1:
            host, port = item.split(":")
        try:
            address = str(ipaddress.ip_address(host))
        except ValueError:
            raise ValueError(f"dns_nameservers: {item!r} is not an IP address (optionally with :port)") from None
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"dns_nameservers: {item!r} has no valid port")
        found.append((address, int(port)))
    return found


def to_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process build the same Settings."""
    env = {
        f"PROVISIONER_{name.upper()}": value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        for name, value in settings.model_dump().items()
    }
    env["DATABASE_URL"] = settings.database_url
    env["KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka_bootstrap_servers
    return env


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def isolated(base: Settings, prefix: str, database_url: str, **overrides: Any) -> Settings:
    """Settings for a run beside any other (tests, benchmarks): its own database, topics,
    consumer groups and ports, on the same PostgreSQL and Kafka as `base`."""
    port = free_port()
    values: dict[str, Any] = {  # validated by Settings
        "database_url": database_url,
        "kafka_bootstrap_servers": base.kafka_bootstrap_servers,
        "topic_lifecycle": f"{prefix}.lifecycle",
        "topic_members": f"{prefix}.members",
        "topic_billing": f"{prefix}.billing",
        "topic_dead_letter": f"{prefix}.dead-letter",
        "consumer_group_prefix": prefix,
        "http_port": port,
        "public_url": f"http://127.0.0.1:{port}",
        "metrics_port_relay": free_port(),
        "metrics_port_membership": free_port(),
        "metrics_port_billing": free_port(),
        "metrics_port_conflicts": free_port(),
        "metrics_port_signals": free_port(),
    }
    values.update(overrides)
    return Settings(**values)
