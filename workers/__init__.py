"""Kafka consumer groups that apply events idempotently to PostgreSQL."""
