"""The soak's pure logic: its fault mix, the report's per-kind figures, and where its section is written."""

from collections import Counter

import pytest

from tests.chaos import __main__ as cli
from tests.chaos import report
from tests.chaos.harness import Fault, Result, Scenario, _target
from tests.chaos.hostile import Tally
from tests.chaos.scenarios import SOAK, soak_faults

pytestmark = pytest.mark.unit


def test_the_soak_has_200_faults_over_every_process_the_brokers_and_postgres():
    kinds = Counter(SOAK.faults)
    assert len(SOAK.faults) >= 200
    assert {"ingest", "relay", "membership", "billing", "conflicts", "broker", "postgres-restart", "postgres-crash"} == set(kinds)
    roles = [kinds[r] for r in ("ingest", "relay", "membership", "billing", "conflicts")]
    assert max(roles) - min(roles) <= 1 and kinds["broker"] >= 15 and kinds["postgres-crash"] >= 5
    assert soak_faults(200, 13) == SOAK.faults and soak_faults(200, 14) != SOAK.faults  # seeded
    assert SOAK.max_in_flight == 4 and SOAK.hostile


def test_a_fault_waits_for_another_on_its_target():
    assert _target("postgres-crash") == _target("postgres-restart") == "postgres"
    assert _target("broker") == "broker" and _target("relay") == "relay"


def test_recovery_by_kind_gives_p50_and_max():
    result = Result(Scenario(name="x", kafka="cluster", faults=[]))
    result.faults = [Fault("billing", 1, recovered_in=2.0, delay_max=1.0), Fault("billing", 5, recovered_in=4.0),
                     Fault("billing", 9, recovered_in=9.0), Fault("broker", 3, recovered_in=30.0, back_in=20.0)]
    rows = report._by_kind(result)
    assert "| billing worker | 3 | 4.0 / 9.0 s | 0 | 1.0 / 1.0 s | - |" in rows[2]
    assert any("broker down + started" in r and "20.0 / 20.0 s" in r for r in rows)
    assert any("ready after the broker answered" in r and "10.0 / 10.0 s" in r for r in rows)


def test_hostile_answers_are_reported_by_status():
    tally = Tally()
    answers = [("search", "400"), ("flood", "200"), ("flood", "429"), ("slow loris", "closed"), ("patch 5000 ops", "200")]
    for what, status in answers:
        tally.record(what, status, 0.0)
    assert tally.by_status() == Counter({"200": 2, "400": 1, "429": 1, "closed": 1})
    assert tally.expensive_accepted() == 1  # the flood's 200s are not counted


def test_the_soak_replaces_its_section_and_a_full_run_keeps_it(tmp_path):
    path = tmp_path / "chaos.md"
    path.write_text("# full run\n\nfigures 1\n")
    cli._write(path, "## Soak\n\nsoak 1\n", soak=True)
    path.write_text(path.read_text() + "\n## Before and after\n\nby hand\n")
    cli._write(path, "## Soak\n\nsoak 2\n", soak=True)
    text = path.read_text()
    assert "figures 1" in text and "soak 2" in text and "soak 1" not in text and "by hand" in text
    cli._write(path, "# full run\n\nfigures 2\n", soak=False)
    text = path.read_text()
    assert "figures 2" in text and "figures 1" not in text and "soak 2" in text and "by hand" in text
