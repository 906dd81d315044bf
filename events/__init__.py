"""Event contracts: the typed catalogue, the envelope, the outbox and its relay, Kafka clients."""
