"""deploy/compose.yaml and deploy/k8s: schemas, Docker Compose's own parser, and our conventions.

Schemas are vendored in tests/ops/schemas (see its README): the Compose Specification,
Kubernetes v1.33 (strict: unknown fields are errors) and KEDA's ScaledObject.
"""

import json
import os
import re
import shutil
import subprocess
from functools import cache
from typing import Any

import pytest
from jsonschema import Draft7Validator, Draft202012Validator

from core.settings import Settings
from tests.ops.conftest import DEPLOY, SCHEMAS, load_yaml, load_yaml_all
from workers.main import WORKERS

pytestmark = pytest.mark.ops

K8S = DEPLOY / "k8s"
PROCESS_PORTS = {"ingest": 8000, "relay": 9101, "membership": 9102, "billing": 9103, "conflicts": 9104, "signals": 9105}


def _errors(validator: Any, doc: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(doc)]


def _setting_names() -> set[str]:
    names = {f"PROVISIONER_{name.upper()}" for name in Settings.model_fields}
    return names | {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"}


# -- compose -----------------------------------------------------------------------------------


def test_compose_matches_the_compose_specification(ops_tools):
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    compose = load_yaml(DEPLOY / "compose.yaml")
    assert not _errors(Draft7Validator(schema), compose)


def test_docker_compose_config_accepts_it(ops_tools):
    """Docker Compose's own loader (interpolation, merge keys, schema, references); no engine needed."""
    command = [*ops_tools.compose, "-f", str(DEPLOY / "compose.yaml"), "config", "--format", "json"]
    env = {k: v for k, v in os.environ.items() if k != "PROVISIONER_SECRET_KEY"}
    # no secret key, no stack: the sealing key has no default outside a developer's machine
    refused = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert refused.returncode != 0 and "PROVISIONER_SECRET_KEY" in refused.stderr
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env={**env, "PROVISIONER_SECRET_KEY": "k" * 43})
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)
    keys = {s["environment"]["PROVISIONER_SECRET_KEY"] for n, s in resolved["services"].items() if n in PROCESS_PORTS}
    assert keys == {"k" * 43}
    services = resolved["services"]
    assert set(services) == {
        "kafka", "postgres", "migrate", "ingest", "relay", "membership", "billing", "conflicts", "signals", "prometheus",
        "grafana",
    }
    assert services["kafka"]["image"].startswith("apache/kafka:4.1")
    assert services["relay"]["deploy"]["replicas"] == 2
    for name, port in PROCESS_PORTS.items():
        service = services[name]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert f"127.0.0.1:{port}/readyz" in " ".join(service["healthcheck"]["test"]), name
        env = service["environment"]
        assert env["PROVISIONER_HTTP_HOST"] == env["PROVISIONER_METRICS_HOST"] == "0.0.0.0"
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092" and "@postgres:5432/" in env["DATABASE_URL"]
    assert services["migrate"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_environment_names_are_settings(ops_tools):
    compose = load_yaml(DEPLOY / "compose.yaml")
    unknown = set(compose["x-provisioner-env"]) - _setting_names()
    assert not unknown, f"not settings of core/settings.py: {unknown}"
    for name, port in PROCESS_PORTS.items():
        command = compose["services"][name]["command"]
        assert command[0] in ("serve", "relay", "worker"), name
        if command[0] == "worker":
            assert command[1] == name and name in WORKERS
        assert getattr(Settings(), "http_port" if name == "ingest" else f"metrics_port_{name}") == port


def test_compose_mounts_exist(ops_tools):
    compose = load_yaml(DEPLOY / "compose.yaml")
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), source


# -- kubernetes --------------------------------------------------------------------------------


@cache
def _k8s_schema() -> dict[str, Any]:
    return json.loads((SCHEMAS / "kubernetes-strict.json").read_text())


def _k8s_validator(api_version: str, kind: str) -> Draft202012Validator:
    bundle = _k8s_schema()
    key = bundle["x-kinds"].get(f"{api_version}/{kind}")
    assert key, f"no vendored schema for {api_version}/{kind}: add it to tests/ops/schemas/vendor.py"
    return Draft202012Validator({"$ref": f"#/$defs/{key}", "$defs": bundle["$defs"]})


def _k8s_docs(ops_tools) -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs.extend((path.name, doc) for doc in load_yaml_all(path))
    return docs


def _by_kind(ops_tools, kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in _k8s_docs(ops_tools) if doc["kind"] == kind}


def test_kubernetes_manifests_match_the_schemas(ops_tools):
    keda = Draft202012Validator(json.loads((SCHEMAS / "keda-scaledobject-v1alpha1.json").read_text()))
    seen = set()
    for name, doc in _k8s_docs(ops_tools):
        validator = keda if doc["apiVersion"] == "keda.sh/v1alpha1" else _k8s_validator(doc["apiVersion"], doc["kind"])
        assert doc["kind"] != "ScaledObject" or doc["apiVersion"] == "keda.sh/v1alpha1"
        errors = _errors(validator, doc)
        assert not errors, f"{name} {doc['kind']}/{doc['metadata']['name']}:\n" + "\n".join(errors)
        seen.add(doc["kind"])
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "provisioner", name
    assert {"Namespace", "ConfigMap", "Secret", "Deployment", "Service", "PodDisruptionBudget", "Job", "ScaledObject"} <= seen


def test_the_schemas_catch_mistakes():
    """The vendored schemas are strict: a misspelt field or a wrong type is an error."""
    bad_deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
        "spec": {"replica": 2, "selector": {"matchLabels": {"a": "b"}},
                 "template": {"spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": "80"}]}]}}},
    }
    errors = _errors(_k8s_validator("apps/v1", "Deployment"), bad_deployment)
    assert any("replica" in e for e in errors) and any("containerPort" in e for e in errors), errors
    keda = Draft202012Validator(json.loads((SCHEMAS / "keda-scaledobject-v1alpha1.json").read_text()))
    bad_scaled = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "x"},
                  "spec": {"scaleTargetRef": {"name": "x"}, "maxReplicas": 3,
                           "triggers": [{"type": "kafka", "metadata": {"lagThreshold": 50}}]}}
    errors = _errors(keda, bad_scaled)
    assert any("maxReplicas" in e for e in errors) and any("lagThreshold" in e for e in errors), errors
    compose_schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    errors = _errors(Draft7Validator(compose_schema), {"services": {"a": {"image": "x", "helthcheck": {}}}})
    assert any("helthcheck" in e for e in errors), errors


def test_deployments_probes_resources_and_shutdown(ops_tools):
    deployments = _by_kind(ops_tools, "Deployment")
    assert set(deployments) == {f"provisioner-{name}" for name in PROCESS_PORTS}
    for name, port in PROCESS_PORTS.items():
        spec = deployments[f"provisioner-{name}"]["spec"]
        pod = spec["template"]["spec"]
        (container,) = pod["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert port in ports.values(), name
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert ports[container["readinessProbe"]["httpGet"]["port"]] == port, name
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind]), name
        assert pod["terminationGracePeriodSeconds"] >= 30, name
        expected_args = {"ingest": ["serve"], "relay": ["relay"]}.get(name, ["worker", name])
        assert container["args"] == expected_args, name
        sources = {s.get("configMapRef", s.get("secretRef"))["name"] for s in container["envFrom"]}
        assert sources == {"provisioner"}, name
        assert spec["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == name
    assert deployments["provisioner-relay"]["spec"]["replicas"] == 2


def test_every_deployment_has_a_service_and_a_disruption_budget(ops_tools):
    deployments = _by_kind(ops_tools, "Deployment")
    services = _by_kind(ops_tools, "Service")
    budgets = _by_kind(ops_tools, "PodDisruptionBudget")
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        for other in (services[name]["spec"]["selector"], budgets[name]["spec"]["selector"]["matchLabels"]):
            assert other.items() <= labels.items(), name
        ports = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
        assert {p["targetPort"] for p in services[name]["spec"]["ports"]} <= ports, name


def test_config_and_secret_are_settings(ops_tools):
    (config,) = _by_kind(ops_tools, "ConfigMap").values()
    (secret,) = _by_kind(ops_tools, "Secret").values()
    names = set(config["data"]) | set(secret["stringData"])
    assert not names - _setting_names(), f"not settings of core/settings.py: {names - _setting_names()}"
    assert config["data"]["PROVISIONER_HTTP_HOST"] == config["data"]["PROVISIONER_METRICS_HOST"] == "0.0.0.0"
    assert "DATABASE_URL" in secret["stringData"] and "CHANGE-ME" in secret["stringData"]["DATABASE_URL"]
    Settings(**{k.removeprefix("PROVISIONER_").lower(): v for k, v in config["data"].items() if k.startswith("PROVISIONER_")})
    (job,) = _by_kind(ops_tools, "Job").values()
    command = " ".join(job["spec"]["template"]["spec"]["containers"][0]["command"])
    assert "provisioner db upgrade" in command and "provisioner topics create" in command


def test_keda_scales_each_worker_on_its_own_lag(ops_tools):
    (config,) = _by_kind(ops_tools, "ConfigMap").values()
    data = config["data"]
    settings = Settings(**{k.removeprefix("PROVISIONER_").lower(): v for k, v in data.items() if k.startswith("PROVISIONER_")})
    topics = settings.topics()
    scaled = _by_kind(ops_tools, "ScaledObject")
    assert set(scaled) == {f"provisioner-{name}" for name in WORKERS}
    for name, (consumer, _, roles, _) in WORKERS.items():
        spec = scaled[f"provisioner-{name}"]["spec"]
        assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"provisioner-{name}"}
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= settings.topic_partitions
        triggers = spec["triggers"]
        assert {t["metadata"]["topic"] for t in triggers} == {topics[role] for role in roles}, name
        for trigger in triggers:
            meta = trigger["metadata"]
            assert trigger["type"] == "kafka"
            assert meta["consumerGroup"] == f"{settings.consumer_group_prefix}-{consumer}"
            assert meta["bootstrapServers"] == data["KAFKA_BOOTSTRAP_SERVERS"]
            assert int(meta["lagThreshold"]) > 0
            assert meta["offsetResetPolicy"] == "earliest"  # what the workers' consumers use


def test_kustomization_lists_every_manifest(ops_tools):
    listed = load_yaml(K8S / "kustomization.yaml")["resources"]
    assert sorted(listed) == sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (shipped with this machine image) renders the kustomization"
    result = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert len(re.findall(r"^kind: ", result.stdout, flags=re.M)) == len(_k8s_docs(ops_tools))

