"""The IdP health rule: what a run of SCIM requests leaves in an org's health row, and the state named from it."""

from datetime import UTC, datetime, timedelta

import pytest

from domain.idp_health import Health, Seen, kind_of, observe, state_of

pytestmark = pytest.mark.unit

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
WINDOW, USUAL = timedelta(minutes=5), timedelta(minutes=40)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def state(h: Health | None, now: datetime, enabled: bool = True) -> str:
    return state_of(h, now, scim_enabled=enabled, window=WINDOW, usual_default=USUAL)


@pytest.mark.parametrize(
    ("status", "kind"),
    [(200, "success"), (201, "success"), (204, "success"), (404, "success"), (409, "success"), (400, "success"),
     (401, "auth_failure"), (403, "auth_failure"), (429, "failure"), (500, "failure"), (503, "failure")],
)  # fmt: skip
def test_each_status_is_one_kind(status, kind):
    assert kind_of(status) == kind


def test_times_only_move_forward_whatever_the_order():
    h = observe(Health(), [Seen(at(2), 201, "POST"), Seen(at(1), 401, "GET"), Seen(at(3), 200, "GET")])
    assert (h.last_request_at, h.last_success_at, h.last_write_at, h.last_auth_failure_at) == (at(3), at(3), at(2), at(1))
    older = observe(h, [Seen(at(0), 500, "GET")])
    assert older.last_request_at == at(3) and older.last_failure_at == at(0) and older.last_failure_status == 500
    assert observe(older, [Seen(at(-1), 503, "GET")]).last_failure_status == 500  # an older failure changes nothing


def test_a_write_counts_only_when_it_succeeded():
    h = observe(Health(), [Seen(at(1), 409, "POST"), Seen(at(2), 200, "GET")])
    assert h.last_write_at is None and h.last_success_at == at(2)
    assert observe(h, [Seen(at(3), 204, "DELETE")]).last_write_at == at(3)


def test_the_usual_interval_learns_the_gaps_between_sync_cycles_only():
    burst = [Seen(at(m / 60), 200, "GET") for m in range(10)]  # ten requests within ten seconds: one cycle
    h = observe(Health(), burst)
    assert h.usual_interval_seconds is None
    h = observe(h, [Seen(at(40), 200, "GET")])
    assert h.usual_interval_seconds == pytest.approx(40 * 60 - 9, abs=1)
    h = observe(h, [Seen(at(120), 200, "GET")])  # an 80-minute gap moves it part of the way
    assert 40 * 60 < h.usual_interval_seconds < 80 * 60


def test_a_revoked_token_fails_auth_until_a_request_succeeds_again():
    h = observe(Health(), [Seen(at(0), 200, "GET"), Seen(at(1), 401, "GET"), Seen(at(2), 401, "POST")])
    assert state(h, at(3)) == "failing_auth"
    assert state(h, at(2) + WINDOW + timedelta(seconds=1)) != "failing_auth"  # nothing for a window: not now
    assert state(observe(h, [Seen(at(4), 200, "GET")]), at(5)) == "healthy"


def test_server_errors_and_throttling_fail_requests_and_auth_wins_over_them():
    h = observe(Health(), [Seen(at(0), 200, "GET"), Seen(at(1), 503, "POST"), Seen(at(1.5), 429, "POST")])
    assert state(h, at(2)) == "failing_requests"
    assert state(observe(h, [Seen(at(1.8), 401, "GET")]), at(2)) == "failing_auth"


def test_quiet_after_twice_the_usual_interval_and_never_connected_without_a_success():
    assert state(None, at(0)) == "not_connected"
    assert state(observe(Health(), [Seen(at(0), 401, "GET")]), at(60)) == "not_connected"  # an old failure only
    h = observe(Health(), [Seen(at(0), 200, "GET")])
    assert state(h, at(79)) == "healthy" and state(h, at(81)) == "quiet"  # 2 x the 40-minute default
    learnt = observe(h, [Seen(at(10), 200, "GET")])  # this IdP syncs every 10 minutes
    assert state(learnt, at(29)) == "healthy" and state(learnt, at(31)) == "quiet"


def test_a_disabled_org_is_disabled_whatever_it_sends():
    h = observe(Health(), [Seen(at(0), 401, "GET")])
    assert state(h, at(0), enabled=False) == "disabled"
