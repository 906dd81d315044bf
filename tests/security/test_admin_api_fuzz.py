"""The admin API against its committed OpenAPI document (schemas/openapi/admin.json), with
requests Schemathesis generates from it: valid ones and ones that break the schema.

Checks: never a 5xx; status codes, content types, headers and bodies as documented; a request
that breaks the schema is refused (4xx); an operation ignores no authentication. The
organisation fuzzed here is its own, so toggling its settings disturbs no other test.
`tests/integration/test_admin_api.py` checks that the committed document is what the app
serves, so a new endpoint is fuzzed here as soon as its document is regenerated.
"""

from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from domain import admin
from tests.conftest import make_org
from tests.security.conftest import examples

pytestmark = pytest.mark.security

ROOT = Path(__file__).resolve().parents[2]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]


@pytest.fixture(scope="module")
def admin_token(settings, engine, app_client) -> str:
    """The admin token of an org of its own."""
    org = make_org(settings, engine)
    org.client.close()
    return admin.create_admin_token(engine, org.slug, "fuzz")


SCHEMA = schemathesis.openapi.from_path(str(ROOT / "schemas/openapi/admin.json"))
# Unknown query parameters are ignored, as FastAPI (and most web APIs) do: not a refusal to expect.
SCHEMA.config.generation.update(allow_extra_parameters=False)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_admin_api_conforms_and_never_fails(operation, mode, admin_token, app_client):
    SCHEMA.app = operation.app = app_client.app  # requests go to the ingest app in process
    calls = Counter()

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples(20),
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def run(case):
        response = case.call_and_validate(headers={"Authorization": f"Bearer {admin_token}"}, checks=CHECKS)
        calls[response.status_code] += 1

    run()
    assert calls, "no request was generated"
