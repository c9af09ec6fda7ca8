"""Reading long histories fast: keyset pages, estimated totals, and streamed CSV exports.

A history (runs, audit events) is read newest first on (created_at, id). A page is "the next N
rows after this (created_at, id)", which an index on (tenant, [filter,] created_at, id) answers by
reading N rows, however deep the page: no OFFSET, which reads and throws away every row before
it, and no COUNT(*), which reads every matching row. Where a total helps, PostgreSQL's planner
estimate is shown instead ("about 12,000").
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.db.models import Model, Q, QuerySet

PAGE_SIZE = 50
EXPORT_BATCH_SIZE = 2000
ESTIMATE_CACHE_SECONDS = 60


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: the (created_at, id) of its last row."""

    created_at: datetime
    id: int

    def encode(self) -> str:
        return f"{self.created_at.isoformat(timespec='microseconds')}_{self.id}"

    @classmethod
    def decode(cls, value: str | None) -> Cursor | None:
        """The cursor in a "more" link; None for a missing or malformed one (the first page)."""
        if not value or "_" not in value or len(value) > 80:
            return None
        moment, _, row_id = value.rpartition("_")
        try:
            created_at = datetime.fromisoformat(moment)
            return cls(created_at, int(row_id)) if created_at.tzinfo else None
        except ValueError:
            return None


def after[Row: Model](rows: QuerySet[Row], cursor: Cursor | None) -> QuerySet[Row]:
    """Rows strictly older than the cursor, newest first.

    `created_at <= x` bounds the index range scan; the OR breaks ties on the same timestamp by
    id, so rows sharing a timestamp across a page boundary are neither skipped nor repeated.
    """
    rows = rows.order_by("-created_at", "-id")
    if cursor is None:
        return rows
    return rows.filter(
        Q(created_at__lte=cursor.created_at)
        & (Q(created_at__lt=cursor.created_at) | Q(id__lt=cursor.id))
    )


@dataclass
class KeysetPage[Row: Model]:
    rows: list[Row]
    next_cursor: Cursor | None
    is_first: bool

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def has_next(self) -> bool:
        return self.next_cursor is not None


def keyset_page[Row: Model](
    rows: QuerySet[Row], *, cursor: Cursor | None, size: int = PAGE_SIZE
) -> KeysetPage[Row]:
    """One page of `rows` after `cursor` (one query: it fetches one row more to know whether a
    next page exists)."""
    fetched = list(after(rows, cursor)[: size + 1])
    page = fetched[:size]
    next_cursor = Cursor(page[-1].created_at, page[-1].pk) if len(fetched) > size and page else None
    return KeysetPage(page, next_cursor, cursor is None)


def estimated_count(rows: QuerySet[Any]) -> int | None:
    """The planner's estimate of how many rows `rows` matches: one EXPLAIN, no scan.

    Shown as "about N": good to a few percent for an unfiltered or single-filter view, which is
    what a total is for (how much history is there?). None where the database cannot say.
    """
    if connection.vendor != "postgresql":
        return None
    sql, params = rows.order_by().values("pk").query.sql_with_params()
    # Planning a query over a table with many indexes costs a few milliseconds: an estimate is
    # remembered for a minute per query (a live list asks again every few seconds).
    key = "estimate:" + hashlib.sha256(repr((sql, params)).encode()).hexdigest()
    estimate = cache.get(key)
    if estimate is not None:
        return estimate
    with connection.cursor() as db_cursor:
        db_cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = db_cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    estimate = int(plan[0]["Plan"]["Plan Rows"])
    cache.set(key, estimate, ESTIMATE_CACHE_SECONDS)
    return estimate


# -- CSV -----------------------------------------------------------------------------------------

# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets
# (=HYPERLINK(...), +cmd|..., -2+3, @SUM(...)); tab and carriage return start one after a
# leading whitespace is trimmed.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_FIRST = frozenset(FORMULA_PREFIXES)


def csv_safe(value: Any) -> str:
    """The cell as text, with a formula neutralised by a leading apostrophe (OWASP's advice)."""
    if value is None:
        return ""
    if value.__class__ is str:
        # Most cells: one set lookup instead of str() and startswith over six prefixes (an
        # export of ten million runs writes two hundred million cells).
        return "'" + value if value[:1] in _FORMULA_FIRST else value
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    text = str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


class _Echo:
    """A file-like object whose write returns the line, for csv.writer in a generator."""

    def write(self, value: str) -> str:
        return value


def stream_csv(
    *,
    header: list[str],
    rows: QuerySet[Any],
    fields: list[str],
    to_cells: Callable[[dict[str, Any]], Iterable[Any]] | None = None,
    batch_size: int = EXPORT_BATCH_SIZE,
) -> Iterator[str]:
    """CSV lines of `rows`, newest first, read in keyset batches of `batch_size`.

    Constant memory however many rows match: each batch is one indexed query (the same as a
    page of the list), and nothing is kept between batches but the cursor. Keyset batches rather
    than one server-side cursor so no transaction stays open for the length of a download.
    """
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    cursor: Cursor | None = None
    values_fields = list(dict.fromkeys([*fields, "created_at", "id"]))
    while True:
        batch = list(after(rows, cursor).values(*values_fields)[:batch_size])
        for row in batch:
            cells = to_cells(row) if to_cells else (row[field] for field in fields)
            yield writer.writerow([csv_safe(cell) for cell in cells])
        if len(batch) < batch_size:
            return
        cursor = Cursor(batch[-1]["created_at"], batch[-1]["id"])
