"""The one SQLAlchemy MetaData every table is declared on (core.tables and core.tables_identity)."""

from typing import Any

from sqlalchemy import MetaData, func

metadata = MetaData()

NOW: dict[str, Any] = {"server_default": func.now(), "nullable": False}  # a creation or update time
