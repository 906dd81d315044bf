"""Acknowledged writes survive every kind of fault (ARCHITECTURE §3.1-3.4), on three brokers.

The short version of `make chaos` (tests/chaos/scenarios.py, QUICK): under SCIM and login load
from two orgs, each process of `provisioner run` is killed with SIGKILL, one of three Kafka
brokers is killed and comes back, PostgreSQL is restarted, all at random moments on servers
this test starts itself. Then every invariant of tests/chaos/invariants.py must hold, every
fault must have been followed by recovery, and the IdP must have seen only answers a correct
service gives (errors it retried are expected and reported, not asserted).
"""

import pytest

from tests.chaos import harness, report
from tests.chaos.scenarios import QUICK

pytestmark = pytest.mark.chaos


def test_no_acknowledged_write_is_lost_when_processes_a_broker_and_postgres_fail():
    result = harness.run(QUICK)
    print(report.render(result))
    assert [f.what for f in result.faults] == QUICK.faults
    assert all(f.recovered_in is not None for f in result.faults), [(f.what, f.detail) for f in result.faults]
    assert not result.traffic.anomalies, result.traffic.anomalies[:5]
    # the load was real: writes of every kind were acknowledged while the faults happened
    assert {"create user", "update user", "deactivate user", "add group member", "login"} <= set(result.traffic.acknowledged)
    failed = [(c.name, c.problems[:5]) for c in result.checks if not c.ok]
    assert len(result.checks) == 5 and not failed, failed
