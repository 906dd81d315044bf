"""Shared parts of every process: settings, tables, the unit of work, credentials."""
