"""The Grafana dashboard and its provisioning, read as Grafana would."""

import pytest

from tests.ops.conftest import DEPLOY, dashboard, dashboard_panels, load_yaml

pytestmark = pytest.mark.ops

ROWS = ["Ingest RED", "Pipeline lag and latency", "Workers", "Billing", "Conflicts"]


def test_dashboard_structure():
    board = dashboard()
    assert board["uid"] == "provisioner" and board["title"]
    assert 36 <= board["schemaVersion"] <= 41
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert [r for r in rows if r in ROWS] == ROWS, rows
    ids = [p["id"] for p in dashboard_panels()]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    (variable,) = board["templating"]["list"]
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"
    for panel in dashboard_panels():
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)) and all(t["expr"].strip() for t in panel["targets"]), panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]


def test_rows_hold_the_requested_panels():
    """Each row shows what the issue asks for, by the metrics its panels query."""
    wanted = {
        "Ingest RED": ["provisioner_http_requests_total", "provisioner_http_request_duration_seconds_bucket"],
        "Pipeline lag and latency": [
            "provisioner_consumer_lag",
            "provisioner_commit_to_applied_seconds_bucket",
            "provisioner_outbox_pending_rows",
            "provisioner_outbox_oldest_age_seconds",
            "provisioner_outbox_publish_delay_seconds_bucket",
        ],
        "Workers": [
            "provisioner_events_consumed_total",
            "provisioner_handler_duration_seconds_bucket",
            "provisioner_consumer_rebalances_total",
            "provisioner_dead_letter_depth",
            "provisioner_dead_letters_total",
        ],
        "Billing": [
            'type="io.provisioner.member.first_login"',
            "provisioner_login_to_billing_published_seconds_bucket",
            "provisioner_billing_verify_mismatches",
        ],
        "Conflicts": ["provisioner_open_conflicts"],
    }
    row, text = None, {}
    for panel in dashboard()["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
            continue
        text[row] = text.get(row, "") + "\n".join(t["expr"] for t in panel["targets"])
    for name, needles in wanted.items():
        for needle in needles:
            assert needle in text.get(name, ""), f"row {name!r} has no panel with {needle}"
    p99 = text["Ingest RED"]
    assert "histogram_quantile(0.5," in p99 and "histogram_quantile(0.99," in p99 and "by (le, route)" in p99


def test_grafana_provisioning(ops_tools):
    datasources = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090" and source["isDefault"]
    providers = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "provisioner.yml")
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    compose = load_yaml(DEPLOY / "compose.yaml")
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/provisioner-dashboard.json:{provider['options']['path']}/provisioner-dashboard.json:ro" in mounts
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
