"""The thin ingest layer: authenticate, validate, write the resource and its events, answer."""
