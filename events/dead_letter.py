"""What goes on the dead-letter topic: a record a worker could not apply, with why and from where.

A CloudEvent like every other record (so the relay's recovery and consumers' dedupe by `id`
work on this topic too), but not a fact about an org: `source` is the worker, `subject` the
origin `<topic>/<partition>/<offset>`, and `data` carries the error, the origin and the record's
value as sent (as text when it is UTF-8 without NUL characters, else base64). The contract is
schemas/dead-letter.json. It is staged in the outbox in the same transaction as the
`dead_letters` row (what `provisioner dlq list|redrive` work from), so the two never disagree.
"""

import base64
from datetime import UTC, datetime
from typing import Any

from events.envelope import SPECVERSION, deterministic_id

TYPE = "io.provisioner.dead_letter"
SCHEMA = "https://provisioner.dev/schemas/dead-letter.json"


def build(consumer: str, record: Any, error: str, dead_letter_id: int, org_id: str | None) -> tuple[str, str, dict[str, Any]]:
    """(event id, Kafka key, payload) of the dead letter `dead_letter_id` of `consumer`."""
    value: bytes = record.value or b""
    try:
        text, encoded = value.decode("utf-8"), None
        if "\x00" in text:  # JSON text could carry it, PostgreSQL's jsonb cannot
            raise UnicodeDecodeError("utf-8", value, 0, 1, "NUL")
    except UnicodeDecodeError:
        text, encoded = None, base64.b64encode(value).decode("ascii")
    key = record.key.decode(errors="replace") if record.key else None
    event_id = deterministic_id(TYPE, consumer, record.topic, record.partition, record.offset, dead_letter_id)
    payload = {
        "specversion": SPECVERSION,
        "id": event_id,
        "source": f"/provisioner/workers/{consumer}",
        "type": TYPE,
        "subject": f"{record.topic}/{record.partition}/{record.offset}",
        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "dataschema": SCHEMA,
        "data": {
            "dead_letter_id": dead_letter_id,
            "consumer": consumer,
            "error": error,
            "orgid": org_id,
            "origin": {"topic": record.topic, "partition": record.partition, "offset": record.offset, "key": key},
            "value": text,
            "value_base64": encoded,
        },
    }
    return event_id, f"{consumer}:{record.topic}:{record.partition}", payload
