"""Infrastructure every process shares: settings, engine, tables and migrations, metrics, logs, credentials."""
