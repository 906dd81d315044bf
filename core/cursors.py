"""Keyset page cursors: the (time, id) of a row, as an opaque URL-safe string.

A list pages by a (time, id) order; the cursor of a row is where the next (or previous) page
starts, exclusive. Clients treat it as opaque; a string this codec did not make is a ValueError,
which the APIs answer with 422 (the console with the first page)."""

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, tuple_

MAX_LENGTH = 200  # an encoded cursor is about 60-90 characters; more is not one of ours


def encode(at: datetime, row_id: int | str) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{row_id}".encode()).decode().rstrip("=")


def decode(cursor: str) -> tuple[datetime, str]:
    """The (time, id) a cursor points at; ValueError when it is not one `encode` made."""
    try:
        if len(cursor) > MAX_LENGTH:
            raise ValueError("too long")
        at, sep, row_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition("|")
        when = datetime.fromisoformat(at)
        if not sep or not row_id or when.tzinfo is None:
            raise ValueError("not a (time, id)")
        return when, row_id
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not a cursor this API issued") from None


@dataclass(frozen=True)
class Page:
    """One page of a list, and the cursors of the pages beside it (None: there is none)."""

    rows: list[dict[str, Any]]
    next: str | None
    previous: str | None


def page(
    conn: Connection,
    query: Select[Any],
    at: ColumnElement[Any],
    row_id: ColumnElement[Any],
    *,
    limit: int,
    after: str | None = None,
    before: str | None = None,
    newest_first: bool = False,
) -> Page:
    """`limit` rows of `query` in (at, row_id) order (newest first if asked), starting after the
    row of `after` or ending before the row of `before` (cursors from an earlier page; ValueError
    if one is not). One statement, `limit + 1` rows read: the extra one says whether there is more."""
    key = tuple_(at, row_id)
    backwards = before is not None
    if after is not None or before is not None:
        mark = tuple_(*decode(before if backwards else after))  # type: ignore[arg-type]
        ahead = key < mark if newest_first != backwards else key > mark
        query = query.where(ahead)
    descending = newest_first != backwards
    order = (at.desc(), row_id.desc()) if descending else (at.asc(), row_id.asc())
    rows = [dict(r) for r in conn.execute(query.order_by(*order).limit(limit + 1)).mappings()]
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    first = encode(rows[0][at.key], rows[0][row_id.key]) if rows else None
    last = encode(rows[-1][at.key], rows[-1][row_id.key]) if rows else None
    if backwards:
        return Page(rows, next=last, previous=first if more else None)
    return Page(rows, next=last if more else None, previous=first if after is not None else None)
