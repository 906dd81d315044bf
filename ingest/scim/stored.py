"""Reading resources stored before the value limits without paying for them.

The cost limits bound what a write may store; a resource stored before them (a user with 10,000
emails, 480 KB) would still cost every read: decoding its JSON (in C, holding the interpreter
for tens of milliseconds) and validating every value. So reads ask PostgreSQL for the longest
top-level list of each row and get `data` as NULL for a row beyond `scim_max_values`; such a row
is refused (`400 tooMany`) before anything of it is decoded. A repair (PUT, DELETE) reads whole
rows. Group members are rows of their own, bounded separately.
"""

from typing import Any

from scim2_models import TooManyException
from sqlalchemy import ColumnElement, Select, case, literal_column, null, select

from core.tables import scim_resources as t
from ingest.scim.cost import CostLimits

VALUES_MAX: ColumnElement[int] = literal_column(
    "(SELECT coalesce(max(jsonb_array_length(e.value)), 0) FROM jsonb_each(scim_resources.data) AS e "
    "WHERE jsonb_typeof(e.value) = 'array')"
)


def readable(cost: CostLimits | None) -> Select[Any]:
    """Resource rows with `values_max`; `data` is NULL where it passes `cost.max_values` (None: whole rows)."""
    if cost is None:
        return select(t, literal_column("0").label("values_max"))
    columns = [c for c in t.c if c.name != "data"]
    data = case((VALUES_MAX > cost.max_values, null()), else_=t.c.data).label("data")
    return select(*columns, data, VALUES_MAX.label("values_max"))


def check_readable(row: Any, cost: CostLimits | None) -> None:
    """Refuse a row `readable` left without its data."""
    if row.data is None and cost is not None:
        raise TooManyException(
            detail=f"this {row.resource_type} was stored before the server's limits: a multi-valued attribute holds "
            f"{row.values_max} values, more than the {cost.max_values} it stores or serves; replace it (PUT) or delete it"
        )
