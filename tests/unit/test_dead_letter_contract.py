"""The dead-letter topic's records match their contract (schemas/dead-letter.json)."""

import base64
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from events import dead_letter
from events.envelope import encode
from ingest.scim.changes import OrgRef, user_events

pytestmark = pytest.mark.unit

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "dead-letter.json").read_text())
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=FormatChecker())
ORG = OrgRef("3f0c2a8e-5b7d-4e1a-9c6f-2d8b7a1e4c90", "acme")


def _record(value: bytes, key: bytes | None = b"k") -> SimpleNamespace:
    return SimpleNamespace(topic="provisioner.lifecycle", partition=4, offset=1234, key=key, value=value)


def test_the_schema_is_valid():
    Draft202012Validator.check_schema(SCHEMA)


def test_an_undecodable_record_keeps_its_bytes_in_base64():
    raw = b"\x00\xff not an event"
    event_id, key, payload = dead_letter.build("membership", _record(raw), "not a provisioner CloudEvent", 7, None)
    VALIDATOR.validate(payload)
    assert payload["id"] == event_id and key == "membership:provisioner.lifecycle:4"
    assert payload["subject"] == "provisioner.lifecycle/4/1234"
    assert payload["data"]["value"] is None and base64.b64decode(payload["data"]["value_base64"]) == raw
    assert payload["data"]["origin"] == {"topic": "provisioner.lifecycle", "partition": 4, "offset": 1234, "key": "k"}


def test_text_with_a_nul_character_goes_in_base64_too():
    _, _, payload = dead_letter.build("membership", _record(b"\x00 text"), "e", 3, None)
    VALIDATOR.validate(payload)
    assert payload["data"]["value"] is None and base64.b64decode(payload["data"]["value_base64"]) == b"\x00 text"


def test_a_failing_event_keeps_its_text_and_org():
    (event,) = user_events(ORG, "u1", None, {"userName": "u1@example.test"}, 1)
    _, _, payload = dead_letter.build("billing", _record(encode(event), None), "RuntimeError: boom", 8, event.org_id)
    VALIDATOR.validate(payload)
    assert json.loads(payload["data"]["value"])["id"] == event.id
    assert payload["data"]["orgid"] == ORG.id and payload["data"]["value_base64"] is None


def test_a_redriven_record_that_fails_again_is_a_new_dead_letter():
    first = dead_letter.build("membership", _record(b"x"), "e", 1, None)[0]
    again = dead_letter.build("membership", _record(b"x"), "e", 2, None)[0]
    assert first != again == dead_letter.build("membership", _record(b"x"), "e", 2, None)[0]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p["data"].update(value="text", value_base64="dGV4dA=="),
        lambda p: p["data"].update(consumer="someone"),
        lambda p: p["data"].pop("origin"),
        lambda p: p.update(type="io.provisioner.user.created"),
        lambda p: p["data"].update(extra=1),
    ],
)
def test_a_broken_dead_letter_fails_validation(mutate):
    _, _, payload = dead_letter.build("membership", _record(b"x"), "e", 1, None)
    mutate(payload)
    assert not VALIDATOR.is_valid(payload)
