"""Set-based writes for the batched engine: many rows, each with its own values, one statement.

A dispatcher records a hundred answers at once. One compare-and-set UPDATE per run costs a query
compilation and a round trip each (most of a worker's ORM time), and Django's bulk_update builds
a CASE per field and row. Here a group of rows that set the same columns is written by one

    UPDATE table AS t SET col = v.col, ... FROM (VALUES (...), ...) AS v(pk, col, ...)
    WHERE t.pk = v.pk [AND t.state IN (...)] RETURNING t.pk

which is still a compare-and-set per row (a row whose guarded column someone else changed
meanwhile is left alone) and reports which rows it changed. Databases other than PostgreSQL
(SQLite for `make demo`) get the same result from one ORM UPDATE per row.

The rows travel as one JSON parameter (`jsonb_to_recordset(%s::jsonb) AS v(col type, ...)`),
not as a VALUES list of one placeholder per value: psycopg parses and adapts a statement's text
and each parameter in Python, and caches the parsing only for short statements with few
parameters, so a hundred rows of ten values cost a worker more CPU in the driver (splitting a
20 kB statement, adapting a thousand values) than the database spent running it. One
`json.dumps` is C code, and the statement's text is the same for every batch of that shape.
`insert_rows` writes new rows the same way.
"""

from __future__ import annotations

import datetime
import functools
import json
import uuid
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from django.db import connection as default_connection
from django.db import models
from django.db.models.expressions import RawSQL

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


def any_of(keys: Sequence[Any]) -> Any:
    """For `pk__in=`: the keys as one array parameter in PostgreSQL (`IN (SELECT
    unnest(%s))`), so a filter on a batch's hundred ids is a short statement psycopg parses
    once, not a hundred placeholders parsed on every call; the plain list elsewhere."""
    if default_connection.vendor != "postgresql":
        return list(keys)
    return RawSQL("SELECT unnest(%s::bigint[])", [list(keys)])


# Cached per field: a dispatcher writes the same few fields of thousands of rows.
@functools.cache
def _plain_type(field: models.Field) -> type | None:
    """The Python type whose values `field` writes as they are (a text, integer, float or boolean
    column; a foreign key to an integer key), or None when its own preparation must run."""
    if field.is_relation and field.many_to_one:
        field = field.target_field
    for kind, plain in (
        (models.BooleanField, bool),
        ((models.CharField, models.TextField), str),
        ((models.IntegerField, models.AutoField), int),
        (models.FloatField, float),
    ):
        if isinstance(field, kind):
            return plain
    return None


def _json_value(field: models.Field, value: Any) -> Any:
    """`value` as the JSON that PostgreSQL reads back into `field`'s column type."""
    if value is None or isinstance(field, models.JSONField):
        return value
    plain = _plain_type(field)
    # A plain value of the column's own type is what the field's preparation would return (an
    # exact type: a choices enum, a subclass of str, still goes through it).
    if plain is not None and type(value) is plain:
        return value
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    prepared = field.get_db_prep_save(value, default_connection)
    if prepared is None or isinstance(prepared, (str, int, float, bool)):
        return prepared
    if isinstance(prepared, (datetime.datetime, datetime.date, datetime.time)):
        return prepared.isoformat()
    if isinstance(prepared, uuid.UUID):
        return str(prepared)
    raise TypeError(f"{field.name}: {type(prepared).__name__} cannot be written set-based")


def _record_columns(fields: Sequence[models.Field]) -> str:
    """`jsonb_to_recordset`'s column definition list for these fields."""
    quote = default_connection.ops.quote_name
    return ", ".join(
        f"{quote(field.column)} {field.cast_db_type(default_connection)}" for field in fields
    )


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
    records = [
        {
            pk_field.column: _json_value(pk_field, pk),
            **{field.column: _json_value(field, values[field.name]) for field in fields},
        }
        # In primary-key order, as the per-row path would lock them.
        for pk, values in sorted(rows, key=lambda row: row[0])
    ]
    params: list[Any] = [json.dumps(records, separators=(",", ":"))]
    table, pk_column = quote(meta.db_table), quote(pk_field.column)
    assignments = ", ".join(f"{quote(f.column)} = v.{quote(f.column)}" for f in fields)
    guards = []
    for name, allowed in expected.items():
        field = meta.get_field(name)
        allowed = list(allowed)
        if not allowed:
            return set()
        guards.append(f"t.{quote(field.column)} = ANY(%s)")
        params.append([field.get_db_prep_value(value, connection) for value in allowed])
    # Identifiers come from the model's meta, quoted; every value is in a parameter.
    conditions = "".join(f" AND {guard}" for guard in guards)
    sql = (
        f"UPDATE {table} AS t SET {assignments} "  # noqa: S608
        f"FROM jsonb_to_recordset(%s::jsonb) AS v({_record_columns(columns)}) "
        f"WHERE t.{pk_column} = v.{pk_column}{conditions} RETURNING t.{pk_column}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


def insert_rows(
    model: type[models.Model], objects: Sequence[models.Model], names: Sequence[str]
) -> None:
    """Insert unsaved `objects`, writing only the fields `names` (the others take their
    database defaults), in one statement; each object gets its primary key.

    What `bulk_create` does, with the rows in one JSON parameter (see the module docstring).
    Other databases take `bulk_create` itself (every field written).
    """
    if not objects:
        return
    if default_connection.vendor != "postgresql":
        model.objects.bulk_create(objects)
        return
    quote = default_connection.ops.quote_name
    meta = model._meta
    fields = [meta.get_field(name) for name in names]
    records = [
        {"position": position, **{f.column: _json_value(f, getattr(o, f.attname)) for f in fields}}
        for position, o in enumerate(objects)
    ]
    columns = ", ".join(quote(field.column) for field in fields)
    pk_column = quote(meta.pk.column)
    # Identifiers come from the model's meta, quoted; every value is in the one parameter.
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({columns}) "  # noqa: S608
        f"SELECT {columns} FROM jsonb_to_recordset(%s::jsonb) "
        f"AS v(position integer, {_record_columns(fields)}) ORDER BY position "
        f"RETURNING {pk_column}"
    )
    with default_connection.cursor() as cursor:
        cursor.execute(sql, [json.dumps(records, separators=(",", ":"))])
        keys = [row[0] for row in cursor.fetchall()]
    if len(keys) != len(objects):
        raise RuntimeError(f"inserted {len(keys)} of {len(objects)} {meta.db_table} rows")
    for instance, key in zip(objects, keys, strict=True):
        instance.pk = key
        instance._state.adding = False
        instance._state.db = default_connection.alias
