"""A real Prometheus scraping the test session's ingest, relay and workers, with the alert rules.

After SCIM traffic (users, a group, PATCHes, a deactivation whose SET is pushed to a receiver, a
bad request, a wrong token), app logins, an email
conflict and a poison record, every expression of the dashboard and of the rules must return
data, every alert must watch series that exist, and every metric family of core/metrics.py must
be exported by the process that owns it, with bounded labels (no email, uuid, org id or slug).
"""

import math
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from kafka import KafkaProducer
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from core import metrics
from core.settings import Settings
from core.tables import scim_tokens
from domain import idp_health, service_tokens, tokens
from tests.conftest import _die_with_parent, _free_port, make_org, wait_for
from tests.ops.conftest import (
    JOBS,
    PROMETHEUS_DIR,
    RULES,
    dashboard_exprs,
    grafana_to_promql,
    load_yaml,
    selectors,
    without_thresholds,
)

pytestmark = pytest.mark.ops

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
WORKER_JOBS = ("provisioner-membership", "provisioner-billing", "provisioner-conflicts", "provisioner-signals")

# Which process exports each family with real values; "all": each of those jobs, "any": one of them.
OWNERS: dict[str, tuple[tuple[str, ...], str]] = {
    "provisioner_http_requests": (("provisioner-ingest",), "all"),
    "provisioner_http_request_duration_seconds": (("provisioner-ingest",), "all"),
    "provisioner_auth_failures": (("provisioner-ingest",), "all"),
    "provisioner_rate_limited": (("provisioner-ingest",), "all"),
    "provisioner_scim_audit_rows": (("provisioner-ingest",), "all"),
    "provisioner_scim_audit_pruned": (("provisioner-ingest",), "all"),
    "provisioner_scim_orgs": (("provisioner-ingest",), "all"),
    "provisioner_outbox_pending_rows": (("provisioner-relay",), "all"),
    "provisioner_outbox_oldest_age_seconds": (("provisioner-relay",), "all"),
    "provisioner_relay_published": (("provisioner-relay",), "all"),
    "provisioner_relay_publish_errors": (("provisioner-relay",), "all"),
    "provisioner_relay_recovered": (("provisioner-relay",), "all"),
    "provisioner_relay_leader": (("provisioner-relay",), "all"),
    "provisioner_outbox_publish_delay_seconds": (("provisioner-relay",), "all"),
    "provisioner_login_to_billing_published_seconds": (("provisioner-relay",), "all"),
    "provisioner_events_consumed": (WORKER_JOBS, "all"),
    "provisioner_handler_duration_seconds": (WORKER_JOBS, "all"),
    "provisioner_batch_duration_seconds": (WORKER_JOBS, "all"),
    "provisioner_commit_to_applied_seconds": (WORKER_JOBS, "any"),
    "provisioner_consumer_lag": (WORKER_JOBS, "all"),
    "provisioner_consumer_rebalances": (WORKER_JOBS, "all"),
    "provisioner_dead_letters": (WORKER_JOBS, "any"),
    "provisioner_dead_letter_depth": (WORKER_JOBS, "all"),
    "provisioner_open_conflicts": (("provisioner-conflicts",), "all"),
    "provisioner_billing_first_logins": (("provisioner-billing",), "all"),
    "provisioner_billing_verify_mismatches": (("provisioner-billing",), "all"),
    "provisioner_reconcile_drifts": (("provisioner-billing",), "all"),
    "provisioner_security_events": (("provisioner-signals",), "all"),
    "provisioner_security_event_delivery_seconds": (("provisioner-signals",), "all"),
    "provisioner_security_events_pending": (("provisioner-signals",), "all"),
    "provisioner_security_events_dead": (("provisioner-signals",), "all"),
}
# Labelled families declared in core/metrics.py that no code records yet: exported as HELP/TYPE
# only. When one gets a call site this test fails: drop it from here and let it be checked.
NOT_RECORDED_YET = {
    "provisioner_rate_limited":
        "the test suite turns the per-org limit off; tests/integration/test_rate_limit.py covers the 429 path",
}

# A selector filtering on 5xx has no series on a healthy stack (the recorded ratio is 0 through
# `or vector(0)`): it is checked without that matcher, and must carry the `status` label.
_HEALTHY_EMPTY_MATCHERS = [re.compile(r',?\s*status=~"5\.\."')]

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[a-z]{2,}", re.I)
_UUID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.I)
_ROUTE = re.compile(
    r"/healthz|/readyz|/metrics|/internal/v1/(logins|accounts)|scim:[A-Za-z.]+|sso:(oidc|saml):[a-z]+|admin|console|app|other"
)
_OUTCOMES = {"applied", "duplicate", "stale", "pending", "ignored", "dead_lettered"}
_OUTCOMES |= {"inline", "batched", "unattributed", "dropped_full", "dropped_error"}  # SCIM audit rows
_OUTCOMES |= {"delivered", "retried"}  # session-revoked SET pushes


@dataclass
class Live:
    url: str
    settings: Settings
    orgs: list[tuple[str, str]] = field(default_factory=list)  # (id, slug)
    emails: list[str] = field(default_factory=list)

    def query(self, expr: str) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        assert r.status_code == 200, f"{expr}: {r.text}"
        return r.json()["data"]["result"]

    def has_data(self, expr: str) -> bool:
        return any(not math.isnan(float(s["value"][1])) for s in self.query(expr))


def _port(settings: Settings, job: str) -> int:
    return getattr(settings, JOBS[job])


def _local_config(settings: Settings, folder: Path) -> Path:
    """deploy/prometheus/prometheus.yml with this session's ports and a 1 s scrape interval."""
    import yaml

    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    config["global"].update({"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"})
    jobs = [c for c in config["scrape_configs"] if c["job_name"].startswith("provisioner-")]
    assert {c["job_name"] for c in jobs} == set(JOBS)
    for job in jobs:
        for key in [k for k in job if k.endswith("_sd_configs") or k == "static_configs"]:
            del job[key]
        job["static_configs"] = [{"targets": [f"127.0.0.1:{_port(settings, job['job_name'])}"]}]
    config["scrape_configs"] = jobs
    shutil.copy(RULES, folder / "rules.yml")
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def prometheus(settings, pipeline, ops_tools, tmp_path_factory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("prometheus")
    config = _local_config(settings, folder)
    subprocess.run([ops_tools.promtool, "check", "config", str(config)], check=True, capture_output=True)
    port = _free_port()
    proc = subprocess.Popen(
        [
            ops_tools.prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(folder / "prometheus.log").open("wb"),
        preexec_fn=_die_with_parent,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, (folder / "prometheus.log").read_text()
        try:
            return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, timeout=30, interval=0.2, message="prometheus ready")

    def all_targets_up() -> bool:  # targets are synced a few seconds after start
        r = httpx.get(f"{url}/api/v1/query", params={"query": 'up{job=~"provisioner-.*"} == 1'}, timeout=5)
        return {s["metric"]["job"] for s in r.json()["data"]["result"]} == set(JOBS)

    wait_for(all_targets_up, timeout=30, interval=0.2, message="every target scraped")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _drive_traffic(settings: Settings, engine, live: Live) -> None:
    org = make_org(settings, engine)
    live.orgs.append((org.id, org.slug))
    tag = uuid.uuid4().hex[:6]
    client = org.client
    try:
        users = []
        for i in range(4):
            email = f"ops-{tag}-{i}@acme.test"
            live.emails.append(email)
            r = client.post("/Users", json={"schemas": [USER], "userName": email, "emails": [{"value": email, "primary": True}]})
            assert r.status_code == 201, r.text
            users.append(r.json()["id"])
        r = client.post("/Groups", json={"schemas": [GROUP], "displayName": f"ops-{tag}", "members": [{"value": users[0]}]})
        assert r.status_code == 201, r.text
        group = r.json()["id"]
        patch = {"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": users[1]}]}]}
        assert client.patch(f"/Groups/{group}", json=patch).status_code in (200, 204)
        patch = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "displayName", "value": "Ops Person"}]}
        assert client.patch(f"/Users/{users[2]}", json=patch).status_code in (200, 204)
        # a deactivation: its session-revoked SET is pushed to the receiver (`set_receiver`)
        patch = {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]}
        assert client.patch(f"/Users/{users[3]}", json=patch).status_code in (200, 204)
        assert client.get("/Users", params={"filter": f'userName eq "{live.emails[0]}"'}).status_code == 200
        # client errors: a body the SCIM schema refuses, an unknown id, a wrong token
        assert client.post("/Users", json={"schemas": [USER], "userName": 42, "emails": "nope"}).status_code == 400
        assert client.get(f"/Users/{uuid.uuid4()}").status_code == 404
        assert httpx.get(f"{org.base_url}/Users", headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401

        # app logins through the internal API: first logins, then billing events
        token = service_tokens.create(engine, "ops")
        with httpx.Client(base_url=settings.public_url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as app:
            for email in live.emails:
                r = app.post("/internal/v1/logins", json={"org": org.slug, "email": email})
                assert r.status_code == 202, r.text
            assert app.post("/internal/v1/logins", json={"org": org.slug}).status_code == 400
            # an account outside the org, then a member with the same email: an open conflict
            clash = f"ops-{tag}-clash@acme.test"
            live.emails.append(clash)
            assert app.post("/internal/v1/accounts", json={"email": clash}).status_code in (200, 201)
        r = client.post("/Users", json={"schemas": [USER], "userName": clash, "emails": [{"value": clash, "primary": True}]})
        assert r.status_code == 201, r.text
        # an org whose IdP keeps sending a token revoked after a leak: failing auth
        with engine.begin() as conn:
            for row in conn.execute(select(scim_tokens).where(scim_tokens.c.org_id == org.id).with_for_update()).all():
                tokens.revoke(conn, "scim", row)
        for _ in range(3):
            assert client.get("/Users", params={"count": 1}).status_code == 401
    finally:
        client.close()

    # a record no worker can decode: dead-lettered by the lifecycle consumers
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers.split(","), acks="all")
    producer.send(settings.topic_lifecycle, key=f"{org.id}:ops-poison".encode(), value=b"\x00 not an event")
    producer.flush()
    producer.close()


def _exprs_to_check() -> list[tuple[str, str]]:
    """(where, PromQL): every dashboard query, every recording rule, every alert sans thresholds."""
    found = [(f"dashboard: {title}", grafana_to_promql(expr)) for title, expr in dashboard_exprs()]
    for rule in load_yaml(RULES)["groups"]:
        for r in rule["rules"]:
            if "record" in r:
                found.append((f"record: {r['record']}", r["expr"]))
            else:
                found.append((f"alert: {r['alert']} (without thresholds)", without_thresholds(r["expr"])))
    return found


def _selector_queries(exprs: list[tuple[str, str]]) -> list[tuple[str, str, str | None]]:
    """(where, selector to query, label it must carry) for every selector of every expression."""
    found = {}
    for where, expr in exprs:
        for selector in selectors(expr):
            query, label = selector, None
            for matcher in _HEALTHY_EMPTY_MATCHERS:
                if matcher.search(query):
                    query, label = matcher.sub("", query).replace("{,", "{"), "status"
            found.setdefault(query, (where, query, label))
    return list(found.values())


@pytest.fixture(scope="module")
def set_receiver(settings) -> Iterator[None]:
    """A push endpoint that accepts every SET (tests/e2e/test_signals.py verifies them)."""
    url = urlsplit(settings.caep_push_url)

    class Accept(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer((url.hostname, url.port), Accept)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield
    httpd.shutdown()


@pytest.fixture(scope="module")
def live(settings, engine, pipeline, prometheus, set_receiver) -> Live:
    live = Live(prometheus, settings)
    started = time.monotonic()
    # Twice: a series is born at its first request, so its first scrape already counts the first
    # round; rate() (and so every quantile) sees the second round's increase.
    _drive_traffic(settings, engine, live)
    time.sleep(3)
    _drive_traffic(settings, engine, live)
    exprs = _exprs_to_check()
    sels = _selector_queries(exprs)

    def all_have_data() -> bool:
        return all(live.has_data(q) for _, q in exprs) and all(live.query(q) for _, q, _ in sels)

    # scrapes every second and rules every second: data shows within a few seconds of the events
    try:
        wait_for(all_have_data, timeout=45, interval=1.0, message="every expression to return data")
    except pytest.fail.Exception:
        pass  # the tests below say which expressions have no data
    live.waited = time.monotonic() - started  # type: ignore[attr-defined]
    return live


def test_every_dashboard_and_rule_expression_returns_data(live):
    empty = [f"{where}: {expr}" for where, expr in _exprs_to_check() if not live.has_data(expr)]
    assert not empty, "expressions without data:\n" + "\n".join(empty)


def test_every_selector_of_every_expression_matches_series(live):
    """Each selector on its own (an `and`/`or` could hide an empty side from the test above)."""
    problems = []
    for where, query, label in _selector_queries(_exprs_to_check()):
        series = live.query(query)
        if not series:
            problems.append(f"{where}: {query} matches no series")
        elif label and not all(label in s["metric"] for s in series):
            problems.append(f"{where}: {query} has no {label} label")
    assert not problems, "\n".join(problems)


def test_alerts_on_the_live_stack(live):
    """The dead letter we produced raises its alert; a healthy stack raises none of the others."""

    def active() -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        for alert in httpx.get(f"{live.url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]:
            found.setdefault(alert["labels"]["alertname"], []).append(alert)
        return found

    alerts = wait_for(
        lambda: active() if "ProvisionerDeadLetters" in active() else None, timeout=15, interval=0.5, message="dead letter alert"
    )
    alerts = wait_for(
        lambda: found if "ProvisionerScimAuthFailing" in (found := active()) else None, timeout=30, interval=0.5,
        message="the failing-auth alert for the org whose token was revoked",
    )
    consumers = {a["labels"]["consumer"] for a in alerts["ProvisionerDeadLetters"]}
    assert "membership" in consumers, alerts["ProvisionerDeadLetters"]
    quiet = {
        "ProvisionerProcessDown", "ProvisionerRelayNoLeader", "ProvisionerIngestErrorRatioHigh", "ProvisionerOutboxStale",
        "ProvisionerBillingVerifyMismatch",
    }
    assert not quiet & set(alerts), {name: alerts[name] for name in quiet & set(alerts)}
    rule_names = {r["alert"] for r in rules_from_api(live) if r["type"] == "alerting"}
    assert rule_names == {r["alert"] for r in load_yaml(RULES)["groups"][1]["rules"]}
    assert all(r["health"] == "ok" for r in rules_from_api(live)), [r for r in rules_from_api(live) if r["health"] != "ok"]


def rules_from_api(live: Live) -> list[dict[str, Any]]:
    groups = httpx.get(f"{live.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    return [{"alert": r.get("name"), **r} for g in groups for r in g["rules"]]


def _scrape(live: Live, job: str) -> dict[str, Any]:
    text = httpx.get(f"http://127.0.0.1:{_port(live.settings, job)}/metrics", timeout=5).text
    return {family.name: family for family in text_string_to_metric_families(text)}


def _declared() -> dict[str, MetricWrapperBase]:
    return {m._name: m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)}


def test_every_metric_family_is_exported_by_its_owner(live):
    declared = _declared()
    assert set(OWNERS) == set(declared), "a family of core/metrics.py has no owner here (or a stale one)"
    scrapes = {job: _scrape(live, job) for job in JOBS}
    problems = []
    for name, metric in declared.items():
        jobs, mode = OWNERS[name]
        labelnames = set(metric._labelnames)
        with_samples = []
        for job in jobs:
            family = scrapes[job].get(name)
            if family is None:
                problems.append(f"{name}: not in {job}'s /metrics")
                continue
            samples = [s for s in family.samples if not s.name.endswith("_created")]
            if samples:
                with_samples.append(job)
            for sample in samples:
                if set(sample.labels) - {"le", "quantile"} != labelnames:
                    problems.append(f"{name} in {job}: labels {sorted(sample.labels)} != declared {sorted(labelnames)}")
        if name in NOT_RECORDED_YET:
            if with_samples:
                problems.append(f"{name} is recorded now: remove it from NOT_RECORDED_YET")
            continue
        needed = len(jobs) if mode == "all" else 1
        if len(with_samples) < needed:
            problems.append(f"{name}: samples only in {with_samples} of {jobs} ({mode})")
    assert not problems, "\n".join(problems)


def test_label_values_are_bounded(live):
    """No email, uuid, org id or org slug in any label; the vocabularies are the code's."""
    settings = live.settings
    topics = set(settings.topics().values())
    forbidden = [s for _, s in live.orgs] + [i for i, _ in live.orgs] + live.emails
    problems = []
    for job in JOBS:
        for family in _scrape(live, job).values():
            if not family.name.startswith("provisioner_"):
                continue
            for sample in family.samples:
                for label, value in sample.labels.items():
                    where = f"{job} {sample.name}{{{label}={value!r}}}"
                    if _EMAIL.search(value) or _UUID.search(value) or any(f in value for f in forbidden):
                        problems.append(f"{where}: identifies a person or an org")
                    ok = {
                        "route": lambda v: _ROUTE.fullmatch(v),
                        "method": lambda v: v in {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"},
                        "status": lambda v: re.fullmatch(r"[1-5]\d\d", v),
                        "kind": lambda v: re.fullmatch(r"[a-z/_]+", v),
                        "topic": lambda v: v in topics,
                        "group": lambda v: v.startswith(f"{settings.consumer_group_prefix}-"),
                        "partition": lambda v: v.isdigit() and int(v) < settings.topic_partitions,
                        "consumer": lambda v: v in {"membership", "billing", "conflicts", "signals"},
                        "outcome": lambda v: v in _OUTCOMES,
                        "type": lambda v: v == "undecodable" or v.startswith("io.provisioner."),
                        "state": lambda v: v in idp_health.STATES,
                        "le": lambda v: True,
                    }.get(label)
                    if ok is None:
                        problems.append(f"{where}: unexpected label")
                    elif not ok(value):
                        problems.append(f"{where}: outside the bounded vocabulary")
    assert not problems, "\n".join(problems)


def test_billing_first_logins_counter_counts_the_first_logins(live):
    billed = wait_for(
        lambda: live.query(
            'sum(provisioner_events_consumed_total{job="provisioner-billing",'
            'type="io.provisioner.member.first_login",outcome="applied"})'
        ),
        timeout=10, message="first logins billed",
    )
    assert float(billed[0]["value"][1]) > 0
    counted = live.query('max(provisioner_billing_first_logins_total{job="provisioner-billing"})')
    assert counted and float(counted[0]["value"][1]) > 0
