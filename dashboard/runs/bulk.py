"""Set-based writes for the batched engine: many rows, each with its own values, one statement.

A dispatcher records a hundred answers at once. One compare-and-set UPDATE per run costs a query
compilation and a round trip each (most of a worker's ORM time), and Django's bulk_update builds
a CASE per field and row. Here a group of rows that set the same columns is written by one

    UPDATE table AS t SET col = v.col, ... FROM (VALUES (...), ...) AS v(pk, col, ...)
    WHERE t.pk = v.pk [AND t.state IN (...)] RETURNING t.pk

which is still a compare-and-set per row (a row whose guarded column someone else changed
meanwhile is left alone) and reports which rows it changed. Databases other than PostgreSQL
(SQLite for `make demo`) get the same result from one ORM UPDATE per row.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from django.db import connection as default_connection
from django.db import models

from dashboard.runs.states import sources


def update_rows(
    model: type[models.Model],
    rows: Sequence[tuple[Any, Mapping[str, Any]]],
    *,
    expected: Mapping[str, Collection[Any]] | None = None,
) -> set[Any]:
    """Set each row's own fields, `rows` being [(pk, {field name: value})]; only rows whose
    `expected` fields (name -> allowed values) still hold one of the allowed values change.

    Returns the primary keys of the rows that changed. Plain values only (no expressions).
    Call it inside the transaction that must hold the change.
    """
    guarded_states = (expected or {}).get("state")
    if guarded_states:
        for _pk, fields in rows:
            if "state" in fields:
                # A guarded state write is a move: only one the table lists (runs.states).
                sources(fields["state"], guarded_states)
    changed: set[Any] = set()
    groups: dict[tuple[str, ...], list[tuple[Any, Mapping[str, Any]]]] = {}
    for pk, fields in rows:
        if fields:
            groups.setdefault(tuple(sorted(fields)), []).append((pk, fields))
    for names, members in groups.items():
        if default_connection.vendor == "postgresql":
            changed |= _update_from_values(model, names, members, expected or {})
        else:
            changed |= _update_one_by_one(model, members, expected or {})
    return changed


def _update_one_by_one(
    model: type[models.Model],
    rows: list[tuple[Any, Mapping[str, Any]]],
    expected: Mapping[str, Collection[Any]],
) -> set[Any]:
    guard = {f"{name}__in": list(values) for name, values in expected.items()}
    return {pk for pk, fields in rows if model.objects.filter(pk=pk, **guard).update(**fields)}


def _update_from_values(
    model: type[models.Model],
    names: tuple[str, ...],
    rows: list[tuple[Any, Mapping[str, Any]]],
    expected: Mapping[str, Collection[Any]],
) -> set[Any]:
    connection = default_connection
    quote = connection.ops.quote_name
    meta = model._meta
    pk_field = meta.pk
    fields = [meta.get_field(name) for name in names]
    columns = [pk_field, *fields]
    # Every value is cast to its column's type: a VALUES list has no column types of its own.
    placeholder = (
        "(" + ", ".join(f"%s::{field.cast_db_type(connection)}" for field in columns) + ")"
    )
    params: list[Any] = []
    # In primary-key order, as the per-row path would lock them.
    for pk, values in sorted(rows, key=lambda row: row[0]):
        params.append(pk_field.get_db_prep_value(pk, connection))
        params.extend(field.get_db_prep_save(values[field.name], connection) for field in fields)
    table, pk_column = quote(meta.db_table), quote(pk_field.column)
    assignments = ", ".join(f"{quote(f.column)} = v.{quote(f.column)}" for f in fields)
    aliases = ", ".join(quote(field.column) for field in columns)
    guards = []
    for name, allowed in expected.items():
        field = meta.get_field(name)
        allowed = list(allowed)
        if not allowed:
            return set()
        guards.append(f"t.{quote(field.column)} IN ({', '.join(['%s'] * len(allowed))})")
        params.extend(field.get_db_prep_value(value, connection) for value in allowed)
    # Identifiers come from the model's meta, quoted; every value is a parameter.
    values_list = ", ".join([placeholder] * len(rows))
    conditions = "".join(f" AND {guard}" for guard in guards)
    sql = (
        f"UPDATE {table} AS t SET {assignments} "  # noqa: S608
        f"FROM (VALUES {values_list}) AS v({aliases}) "
        f"WHERE t.{pk_column} = v.{pk_column}{conditions} RETURNING t.{pk_column}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}
