"""The CloudEvents envelope round-trips, and anything else is refused with EnvelopeError."""

import orjson
import pytest

from events.envelope import EnvelopeError, decode, encode
from ingest.scim.changes import OrgRef, user_events

pytestmark = pytest.mark.unit

ORG = OrgRef("00000000-0000-0000-0000-000000000001", "acme")


def test_round_trip():
    (event,) = user_events(ORG, "u1", None, {"userName": "bob"}, 1)
    back = decode(encode(event))
    assert back == event


def test_structured_cloudevent_has_required_attributes():
    (event,) = user_events(ORG, "u1", None, {"userName": "bob"}, 1)
    ce = event.to_cloudevent()
    for attr in ("specversion", "id", "source", "type"):
        assert ce[attr]
    assert ce["specversion"] == "1.0"
    assert ce["datacontenttype"] == "application/json"


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"{}", orjson.dumps({"specversion": "1.0", "type": "io.provisioner.nope"}), orjson.dumps([1, 2])],
)
def test_malformed_records_are_envelope_errors(raw):
    with pytest.raises(EnvelopeError):
        decode(raw)


def test_wrong_specversion_is_refused():
    (event,) = user_events(ORG, "u1", None, {"userName": "bob"}, 1)
    ce = event.to_cloudevent()
    ce["specversion"] = "0.3"
    with pytest.raises(EnvelopeError):
        decode(orjson.dumps(ce))
