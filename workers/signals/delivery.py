"""Push delivery of staged Security Event Tokens (RFC 8935), with retries and a dead-letter state.

A thread of the signals worker claims due rows of `security_events` (a lease: the row's next
attempt moves past the push timeout, so a process killed mid-push leaves it to be tried again),
signs each as a SET at the moment it is sent, POSTs it as `application/secevent+jwt`, and records
the answer:

- 2xx (RFC 8935 says 202): delivered. The time from the member's deactivation to here is the
  `provisioner_security_event_delivery_seconds` histogram, which the SLO alert reads.
- 400 (the receiver's `{"err": ...}` says why: a bad signature, issuer or audience) and any other
  4xx but 401, 403, 408 and 429: the receiver will not take this SET; dead at once.
- 401/403 (a credential being rotated), 408, 429, 5xx, no answer: tried again after a back-off
  that doubles from `caep_push_retry_base_seconds` up to `caep_push_retry_max_seconds` (or the
  receiver's `Retry-After`, if longer), until `caep_push_max_attempts`; then dead.

Delivery is at least once: a push whose answer is lost is sent again with the same `jti`, which
RFC 8935 receivers dedupe on. Dead rows stay until `provisioner signals redrive` queues them again.
"""

import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from sqlalchemy import Engine, text

from core import metrics
from core.settings import Settings
from events import security_event_token as tokens
from workers.signals import queue

log = logging.getLogger("provisioner.signals")

_CLAIM = text(
    "UPDATE security_events SET attempts = attempts + 1, next_attempt_at = now() + make_interval(secs => :lease) "
    "WHERE jti IN (SELECT jti FROM security_events WHERE status = 'pending' AND next_attempt_at <= now() "
    "ORDER BY next_attempt_at LIMIT :n FOR UPDATE SKIP LOCKED) "
    "RETURNING jti::text, org_id::text, member_id::text, reason, occurred_at, attempts"
)
_DELIVERED = text(
    "UPDATE security_events SET status = 'delivered', delivered_at = now(), last_error = NULL WHERE jti = CAST(:jti AS uuid)"
)
_RETRY = text(
    "UPDATE security_events SET next_attempt_at = now() + make_interval(secs => :delay), last_error = :error "
    "WHERE jti = CAST(:jti AS uuid)"
)
_DEAD = text("UPDATE security_events SET status = 'dead', last_error = :error WHERE jti = CAST(:jti AS uuid)")
_RETRYABLE = {401, 403, 408, 429}


@dataclass(frozen=True)
class Result:
    jti: str
    outcome: str  # delivered | retried | dead_lettered
    error: str | None = None
    delay: float = 0.0
    occurred_at: datetime | None = None


def classify(
    status: int | None, body: bytes, retry_after: str | None, attempts: int, settings: Settings
) -> tuple[str, str | None, float]:
    """What an answer (or none: `status` None) means for this SET: outcome, error, delay before the next try."""
    if status is not None and 200 <= status < 300:
        return "delivered", None, 0.0
    error = _error_text(status, body)
    if status is not None and 400 <= status < 500 and status not in _RETRYABLE:
        return "dead_lettered", error, 0.0
    if attempts >= settings.caep_push_max_attempts:
        return "dead_lettered", f"gave up after {attempts} attempts: {error}", 0.0
    # jittered, so a receiver recovering from an outage is not hit by every signal at once
    base = settings.caep_push_retry_base_seconds * 2 ** min(attempts - 1, 60)
    delay = min(settings.caep_push_retry_max_seconds, base * random.uniform(0.8, 1.2))
    if retry_after and retry_after.strip().isdigit():
        delay = max(delay, min(float(retry_after), settings.caep_push_retry_max_seconds))
    return "retried", error, delay


def _error_text(status: int | None, body: bytes) -> str:
    if status is None:
        return body.decode(errors="replace")[:500]
    try:
        answer = orjson.loads(body)
        if isinstance(answer, dict) and "err" in answer:  # RFC 8935 §2.3's error response
            return f"HTTP {status}: {answer['err']}: {answer.get('description', '')}"[:500]
    except ValueError:
        pass
    return f"HTTP {status}: {body[:200].decode(errors='replace')}"


class Pusher:
    """Signs and pushes one claimed row at a time; thread-safe (one httpx client, shared)."""

    def __init__(self, settings: Settings, client: httpx.Client | None = None):
        self.settings = settings
        self.signer = tokens.signer_for(settings)
        self.audience = settings.caep_audience or settings.caep_push_url
        headers = {"Content-Type": tokens.MEDIA_TYPE, "Accept": "application/json"}
        if settings.caep_push_authorization.get_secret_value():
            headers["Authorization"] = settings.caep_push_authorization.get_secret_value()
        self.client = client or httpx.Client(timeout=settings.caep_push_timeout_seconds, headers=headers)

    def push(self, row: Any) -> Result:
        token = self.signer.session_revoked(
            jti=row.jti, audience=self.audience, org_id=row.org_id, member_id=row.member_id, reason=row.reason,
            occurred_at=row.occurred_at, issued_at=datetime.now(UTC),
        )  # fmt: skip
        try:
            answer = self.client.post(self.settings.caep_push_url, content=token)
            status, body, retry_after = answer.status_code, answer.content, answer.headers.get("Retry-After")
        except httpx.HTTPError as exc:
            status, body, retry_after = None, f"{type(exc).__name__}: {exc}".encode(), None
        outcome, error, delay = classify(status, body, retry_after, row.attempts, self.settings)
        return Result(row.jti, outcome, error, delay, row.occurred_at)


def deliver_due(engine: Engine, pusher: Pusher, pool: ThreadPoolExecutor, batch: int) -> int:
    """Claim up to `batch` due signals, push them concurrently, record each answer; returns how many were claimed."""
    lease = pusher.settings.caep_push_timeout_seconds + 5
    with engine.begin() as conn:
        rows = conn.execute(_CLAIM, {"n": batch, "lease": lease}).all()
    if not rows:
        return 0
    results = list(pool.map(pusher.push, rows))
    with engine.begin() as conn:
        for r in results:
            if r.outcome == "delivered":
                conn.execute(_DELIVERED, {"jti": r.jti})
            elif r.outcome == "retried":
                conn.execute(_RETRY, {"jti": r.jti, "delay": r.delay, "error": r.error})
            else:
                conn.execute(_DEAD, {"jti": r.jti, "error": r.error})
    now = datetime.now(UTC)
    for r in results:
        metrics.SECURITY_EVENTS.labels(r.outcome).inc()
        if r.outcome == "delivered" and r.occurred_at is not None:
            metrics.SECURITY_EVENT_DELIVERY.observe(max(0.0, (now - r.occurred_at).total_seconds()))
        elif r.outcome == "dead_lettered":
            log.error("security event dead-lettered", extra={"jti": r.jti, "error": r.error})
    return len(rows)


def run(settings: Settings, engine: Engine, stop: threading.Event) -> None:
    """Deliver until `stop` is set; an idle loop looks for due signals every `caep_push_poll_seconds`."""
    pusher = Pusher(settings)
    batch = settings.caep_push_concurrency * 4
    pruned = 0.0
    with ThreadPoolExecutor(max_workers=settings.caep_push_concurrency, thread_name_prefix="set-push") as pool:
        while not stop.is_set():
            if time.monotonic() - pruned > 600:
                pruned = time.monotonic()
                try:
                    queue.prune(engine, settings.caep_retention_days)
                except Exception:
                    log.exception("pruning delivered security events failed")
            try:
                claimed = deliver_due(engine, pusher, pool, batch)
            except Exception:  # PostgreSQL away: the rows wait, leased or due; try again shortly
                log.exception("security event delivery failed; retrying")
                claimed = 0
                time.sleep(1.0)
            if claimed < batch:
                stop.wait(settings.caep_push_poll_seconds)
    pusher.client.close()
