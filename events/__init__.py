"""Event contracts, the outbox and the relay that publishes it to Kafka."""
