"""Fixtures of the ops tests: the tools (`setup.sh`), the deploy files, and their PromQL.

The expressions checked against a live Prometheus are read from the dashboard and the rule
files, never copied here, so a panel or rule that names a metric, label or job that does not
exist fails the tests.
"""

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
RULES = PROMETHEUS_DIR / "rules.yml"
DASHBOARD = DEPLOY / "grafana" / "provisioner-dashboard.json"
RUNBOOK = ROOT / "docs" / "runbook.md"
SCHEMAS = Path(__file__).with_name("schemas")

# The scrape jobs of prometheus.yml, and the Settings field giving each one's port.
JOBS = {
    "provisioner-ingest": "http_port",
    "provisioner-relay": "metrics_port_relay",
    "provisioner-membership": "metrics_port_membership",
    "provisioner-billing": "metrics_port_billing",
    "provisioner-conflicts": "metrics_port_conflicts",
    "provisioner-signals": "metrics_port_signals",
}


@dataclass
class Tools:
    promtool: str
    prometheus: str
    compose: list[str]  # `docker compose` or a standalone docker-compose binary


@pytest.fixture(scope="session")
def ops_tools() -> Tools:
    subprocess.run(["bash", str(Path(__file__).with_name("setup.sh")), sys.executable], check=True)
    promtool, prometheus = shutil.which("promtool"), shutil.which("prometheus")
    assert promtool and prometheus, "setup.sh did not install Prometheus"
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        compose = ["docker", "compose"]
    else:
        compose = [str(ROOT / ".local" / "ops-tools" / "bin" / "docker-compose")]
    return Tools(promtool, prometheus, compose)


def load_yaml(path: Path) -> Any:
    import yaml  # installed by setup.sh when missing: request `ops_tools` before calling this

    return yaml.safe_load(path.read_text())


def load_yaml_all(path: Path) -> list[Any]:
    import yaml

    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def rules(ops_tools: Tools) -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def alerts(ops_tools: Tools) -> list[dict[str, Any]]:
    return [rule for rule in rules(ops_tools) if "alert" in rule]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_panels() -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard()["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # panels of collapsed rows
    return panels


def dashboard_exprs() -> list[tuple[str, str]]:
    """(panel title, expr) for every query of every panel."""
    return [(p["title"], t["expr"]) for p in dashboard_panels() for t in p.get("targets", [])]


# Grafana's built-in interval variables, as a query over a few minutes of data would get them.
_GRAFANA_VARIABLES = {"$__rate_interval": "2m", "$__interval": "15s", "$__range": "5m"}


def grafana_to_promql(expr: str) -> str:
    for name, value in _GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unknown dashboard variable in {expr!r}"
    return expr


_COMPARISON = re.compile(r"\s*(?:==|!=|>=|<=|>|<)\s*(?:bool\s+)?-?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?(?![\w.])")


def without_thresholds(expr: str) -> str:
    """An alert's expression with its comparisons against constants removed: what is compared.

    `a > 0.05` becomes `a`, `deriv(x[10m]) > 0 and x > 1000` becomes `deriv(x[10m]) and x`,
    `up == 0` becomes `up`. Evaluated on a healthy stack it must return data: the alert is then
    watching series that exist, and fires when they cross the threshold.
    """
    stripped = _COMPARISON.sub("", expr)
    assert not re.search(r"(?:==|!=|>=|<=|[<>])\s*-?\d", stripped), stripped
    return stripped


_SELECTOR = re.compile(r"(?<![\w:])((?:provisioner_\w+)|up|(?:[a-z_]+:[\w:]+))(?![\w(])\s*(\{[^}]*\})?")


def selectors(expr: str) -> list[str]:
    """The series selectors (metric or recorded name, with its matchers) an expression reads."""
    found = []
    for name, matchers in _SELECTOR.findall(expr):
        found.append(name + (matchers or ""))
    return sorted(set(found))
