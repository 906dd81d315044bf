"""Entra-, Okta- and OneLogin-shaped request sequences get the answers those IdPs expect.

Each sequence runs in a fresh org; one test interleaves two orgs to show their users, groups
and lookups never mix.
"""

import json
from pathlib import Path

import pytest

from tests.conftest import make_org
from tests.replay import replay

SEQUENCES = sorted((Path(__file__).parent.parent / "fixtures" / "idp" / "sequences").glob("*.json"))

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("path", SEQUENCES, ids=[p.stem for p in SEQUENCES])
def test_idp_sequence(path, scim_org, engine):
    replay(scim_org.client, json.loads(path.read_text()))


def test_two_orgs_replaying_the_same_sequence_do_not_interfere(settings, engine, server):
    sequence = json.loads((SEQUENCES[0]).read_text())
    first, second = make_org(settings, engine), make_org(settings, engine)
    replay(first.client, sequence)
    replay(second.client, sequence)  # same userNames, same groups: each org sees only its own
    users_a = {u["id"] for u in first.client.get("/Users").json()["Resources"]}
    users_b = {u["id"] for u in second.client.get("/Users").json()["Resources"]}
    assert users_a and users_b and not users_a & users_b
    for uid in users_a:
        assert second.client.get(f"/Users/{uid}").status_code == 404
