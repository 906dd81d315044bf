"""The `provisioner` command: the one package that wires every other package (core, domain, ingest, events, workers)."""
