"""A generator's payload schema (JSON Schema draft 2020-12) → form fields → the `context` object.

- `check_schema` refuses anything that is not a valid draft 2020-12 schema of a JSON object.
- `form_fields` turns the schema into typed fields: string, integer, number, boolean, enum,
  date-time (UTC), URI, nested objects (a fieldset each); anything else (arrays, untyped values)
  is a JSON field. Titles are labels, descriptions help texts, defaults initial values.
- `parse_form` turns posted form data back into a context. A text that cannot be converted
  (an integer field holding "abc") is kept as the text, so the schema rejects it: whether a
  context is accepted is always exactly what `jsonschema` decides (`context_errors`).
- `context_errors` validates with `jsonschema` and names each failing field.
- `request_body` is the exact minified body the client will send, with the context's keys in
  the order they come back from PostgreSQL's jsonb (shorter keys first, then bytewise), since
  the worker sends what it reads from the database.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.utils.translation import gettext, gettext_lazy
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError
from jsonschema.exceptions import ValidationError as JsonSchemaError

from dashboard.input_checks import nested_unstorable_reason, parse_json_text
from dashboard.vendors.http import minified_json

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
FIELD_PREFIX = "ctx"
NON_FIELD = "__all__"
MAX_SCHEMA_BYTES = 256 * 1024
MAX_FIELDS = 500

RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")
INTEGER_TEXT = re.compile(r"[+-]?\d+")

FORMAT_CHECKER = FormatChecker()


@FORMAT_CHECKER.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    """RFC 3339 with a time zone (what Optimove's own examples carry: `2026-02-05T20:00:00Z`)."""
    if not isinstance(value, str):
        return True
    if not RFC3339.fullmatch(value):
        return False
    datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    return True


@FORMAT_CHECKER.checks("uri", raises=ValueError)
def _is_uri(value: object) -> bool:
    """An absolute URI: a scheme and something after it, no spaces."""
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme and (parts.netloc or parts.path)) and not any(
        character.isspace() for character in value
    )


def validator_for(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(schema, format_checker=FORMAT_CHECKER)


def check_schema(schema: Any) -> dict[str, Any]:
    """Return `schema` if it is a valid draft 2020-12 schema of a JSON object; else raise
    ValidationError saying what is wrong (and where)."""
    if not isinstance(schema, dict):
        raise ValidationError({"schema": gettext("The schema must be a JSON object.")})
    # Before anything reads it: jsonschema and the form builder recurse into it, and the size
    # check encodes it (a lone surrogate or a non-finite number cannot be encoded).
    reason = nested_unstorable_reason(schema)
    if reason:
        raise ValidationError(
            {
                "schema": gettext("The schema contains %(reason)s, which cannot be stored.")
                % {"reason": reason}
            }
        )
    declared = schema.get("$schema")
    if declared is not None and declared.rstrip("#") != DRAFT_2020_12:
        raise ValidationError(
            {
                "schema": gettext("$schema must be %(draft)s (draft 2020-12), not %(declared)s.")
                % {"draft": DRAFT_2020_12, "declared": repr(declared)}
            }
        )
    if len(minified_json(schema)) > MAX_SCHEMA_BYTES:
        raise ValidationError({"schema": gettext("The schema is larger than 256 KB.")})
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        where = "/".join(str(part) for part in error.absolute_path) or "(top level)"
        raise ValidationError(
            {
                "schema": gettext(
                    "Not a valid JSON Schema (draft 2020-12) at %(where)s: %(message)s"
                )
                % {"where": where, "message": error.message}
            }
        ) from None
    if schema.get("type") != "object":
        raise ValidationError(
            {"schema": gettext('The context is a JSON object: the schema needs "type": "object".')}
        )
    if sum(1 for _ in _walk(form_fields(schema))) > MAX_FIELDS:
        raise ValidationError(
            {
                "schema": gettext("The schema has more than %(maximum)s fields.")
                % {"maximum": MAX_FIELDS}
            }
        )
    return schema


def parse_schema_text(text: str) -> dict[str, Any]:
    """A schema from a JSON document (an imported file or the editor); ValidationError if the
    text is not JSON or not a valid schema."""
    try:
        schema = parse_json_text(text, subject="The schema")
    except ValidationError as error:
        raise ValidationError({"schema": error.messages}) from None
    return check_schema(schema)


# -- fields ------------------------------------------------------------------------------------


@dataclass
class FormField:
    """One input (or fieldset, for a nested object) of the trigger form."""

    path: tuple[str, ...]
    kind: str  # string, integer, number, boolean, enum, date-time, uri, email, object, json
    label: str
    description: str = ""
    required: bool = False
    default: Any = None
    has_default: bool = False
    choices: list[tuple[str, str]] = field(default_factory=list)
    children: list[FormField] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    # Set by `bind` for rendering: the input's text and its errors.
    value: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return field_name(self.path)

    @property
    def html_id(self) -> str:
        return "id_" + re.sub(r"[^A-Za-z0-9_-]", "_", self.name)

    @property
    def depth(self) -> int:
        return len(self.path) - 1


def field_name(path: tuple[str, ...] | list[Any]) -> str:
    """The input name of a context path: JSON-pointer style, `ctx/venue/city`."""
    escaped = (str(part).replace("~", "~0").replace("/", "~1") for part in path)
    return "/".join((FIELD_PREFIX, *escaped))


def _non_null_type(subschema: dict[str, Any]) -> str | None:
    declared = subschema.get("type")
    if isinstance(declared, list):
        types = [item for item in declared if item != "null"]
        return types[0] if len(types) == 1 else None
    return declared if isinstance(declared, str) else None


def _kind(subschema: dict[str, Any]) -> str:
    if "enum" in subschema or "const" in subschema:
        return "enum"
    declared = _non_null_type(subschema)
    if declared == "string":
        fmt = subschema.get("format")
        if fmt == "date-time":
            return "date-time"
        if fmt in ("uri", "url", "iri"):
            return "uri"
        if fmt == "email":
            return "email"
        return "string"
    if declared in ("integer", "number", "boolean"):
        return declared
    if declared == "object" and isinstance(subschema.get("properties"), dict):
        return "object"
    return "json"


def form_fields(schema: dict[str, Any]) -> list[FormField]:
    """The trigger form's fields for a (checked) schema, in the schema's property order."""
    return _object_fields(schema, ())


def _object_fields(schema: dict[str, Any], path: tuple[str, ...]) -> list[FormField]:
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    fields = []
    for key, subschema in properties.items():
        if not isinstance(subschema, dict):
            subschema = {}
        fields.append(_field(key, subschema, (*path, key), key in required))
    return fields


def _field(key: str, subschema: dict[str, Any], path: tuple[str, ...], required: bool) -> FormField:
    kind = _kind(subschema)
    form_field = FormField(
        path=path,
        kind=kind,
        label=str(subschema.get("title") or key),
        description=str(subschema.get("description") or ""),
        required=required,
        default=subschema.get("default"),
        has_default="default" in subschema,
    )
    if kind == "enum":
        values = subschema["enum"] if "enum" in subschema else [subschema["const"]]
        form_field.choices = [(_option(value), _option_label(value)) for value in values]
    elif kind == "boolean":
        form_field.choices = [("true", "Yes"), ("false", "No")]
    elif kind == "object":
        form_field.children = _object_fields(subschema, path)
    attributes = {}
    for keyword, attribute in (
        ("minimum", "min"),
        ("maximum", "max"),
        ("minLength", "minlength"),
        ("maxLength", "maxlength"),
    ):
        if isinstance(subschema.get(keyword), int | float) and not isinstance(
            subschema.get(keyword), bool
        ):
            attributes[attribute] = subschema[keyword]
    if kind == "number":
        attributes["step"] = "any"
    form_field.attributes = attributes
    return form_field


def _option(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _option_label(value: Any) -> str:
    return value if isinstance(value, str) else _option(value)


def _walk(fields: list[FormField]) -> Iterator[FormField]:
    for form_field in fields:
        yield form_field
        yield from _walk(form_field.children)


def bind(
    fields: list[FormField], values: Mapping[str, str], errors: Mapping[str, list[str]]
) -> list[FormField]:
    """Give each field (nested ones too) its text and errors, for the template."""
    for item in _walk(fields):
        item.value = str(values.get(item.name, ""))
        item.errors = list(errors.get(item.name, []))
    return fields


def leaf_fields(schema: dict[str, Any]) -> list[FormField]:
    """Every input of the form (nested objects' inputs included, fieldsets left out)."""
    return [item for item in _walk(form_fields(schema)) if item.kind != "object"]


# -- form data ↔ context -------------------------------------------------------------------------


def form_initial(
    schema: dict[str, Any], context: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """The form's text values: from `context` (a relaunch, a schedule being edited), else the
    schema's defaults."""
    values: dict[str, str] = {}
    for form_field in leaf_fields(schema):
        present, value = _lookup(context, form_field.path) if context is not None else (False, None)
        if not present and context is None and form_field.has_default:
            present, value = True, form_field.default
        if present:
            values[form_field.name] = to_text(form_field, value)
    return values


def _lookup(context: Mapping[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    current: Any = context
    for part in path:
        if not isinstance(current, Mapping) or part not in current:
            return False, None
        current = current[part]
    return True, current


def to_text(form_field: FormField, value: Any) -> str:
    """How a context value is shown in the field's input."""
    if form_field.kind == "enum":
        return _option(value)
    if form_field.kind == "boolean":
        return "true" if value is True else "false" if value is False else _option(value)
    if form_field.kind == "date-time" and isinstance(value, str) and RFC3339.fullmatch(value):
        moment = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if form_field.kind == "json":
        return _option(value)
    if isinstance(value, str):
        return value
    return _option(value)


def parse_form(
    schema: dict[str, Any], data: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The context a posted form describes, and errors found while reading it (only JSON fields
    holding text that is not JSON). An empty input leaves its property out."""
    errors: dict[str, list[str]] = {}
    context = _parse_object(form_fields(schema), data, errors)
    return context, errors


def _parse_object(
    fields: list[FormField], data: Mapping[str, Any], errors: dict[str, list[str]]
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for form_field in fields:
        key = form_field.path[-1]
        if form_field.kind == "object":
            child = _parse_object(form_field.children, data, errors)
            if child or form_field.required:
                result[key] = child
            continue
        raw = data.get(form_field.name)
        if raw is None or str(raw) == "":
            continue
        present, value = _from_text(form_field, str(raw), errors)
        if present:
            result[key] = value
    return result


def _from_text(form_field: FormField, raw: str, errors: dict[str, list[str]]) -> tuple[bool, Any]:
    text = raw.strip()
    kind = form_field.kind
    if kind == "integer":
        return True, int(text) if INTEGER_TEXT.fullmatch(text) else raw
    if kind == "number":
        if INTEGER_TEXT.fullmatch(text):
            return True, int(text)
        try:
            number = float(text)
        except ValueError:
            return True, raw
        return True, number if math.isfinite(number) else raw
    if kind in ("boolean", "enum"):
        try:
            return True, parse_json_text(text)
        except ValidationError:
            return True, raw
    if kind == "date-time":
        return True, _date_time_text(text)
    if kind == "json":
        try:
            return True, parse_json_text(text)
        except ValidationError as error:
            errors.setdefault(form_field.name, []).extend(error.messages)
            return False, None
    return True, raw


def _date_time_text(text: str) -> str:
    """A date-time input's value as RFC 3339. The form's inputs are in UTC; a value that already
    names its zone is kept as typed."""
    if RFC3339.fullmatch(text):
        return text
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- validation --------------------------------------------------------------------------------


def context_errors(schema: dict[str, Any], context: Any) -> dict[str, list[str]]:
    """Every way `context` fails the schema, keyed by the form field it concerns (NON_FIELD for
    the object as a whole). Empty when, and only when, jsonschema accepts it."""
    fields = {item.path: item for item in _walk(form_fields(schema))}
    errors: dict[str, list[str]] = {}
    for error in sorted(validator_for(schema).iter_errors(context), key=_error_order):
        path = tuple(str(part) for part in error.absolute_path)
        if error.validator == "required" and isinstance(error.instance, dict):
            # jsonschema yields one "required" error per missing property, each carrying the
            # whole list: name every missing property once.
            for missing in error.validator_value:
                if missing not in error.instance:
                    target = _nearest(fields, (*path, missing))
                    message = (
                        gettext("This field is required.")
                        if target == field_name((*path, missing))
                        else gettext("%(name)s is required.") % {"name": repr(missing)}
                    )
                    if message not in errors.setdefault(target, []):
                        errors[target].append(message)
            continue
        target = _nearest(fields, path)
        errors.setdefault(target, []).append(_message(error, fields.get(path)))
    return errors


def _error_order(error: JsonSchemaError) -> tuple[str, str]:
    return ("/".join(str(part) for part in error.absolute_path), error.message)


def _nearest(fields: dict[tuple[str, ...], FormField], path: tuple[str, ...]) -> str:
    while path:
        if path in fields:
            return field_name(path)
        path = path[:-1]
    return NON_FIELD


TYPE_WORDS = {
    "integer": gettext_lazy("a whole number"),
    "number": gettext_lazy("a number"),
    "string": gettext_lazy("a text"),
    "boolean": gettext_lazy("yes or no"),
    "object": gettext_lazy("an object"),
    "array": gettext_lazy("a list"),
    "null": gettext_lazy("empty (null)"),
}


def _message(error: JsonSchemaError, form_field: FormField | None) -> str:
    where = "/".join(str(part) for part in error.absolute_path)
    prefix = "" if form_field is not None or not where else f"{where}: "
    if error.validator == "type":
        expected = error.validator_value
        names = expected if isinstance(expected, list) else [expected]
        kinds = gettext(" or ").join(str(TYPE_WORDS.get(name, name)) for name in names)
        return prefix + gettext("Expected %(kinds)s.") % {"kinds": kinds}
    if error.validator == "format":
        if error.validator_value == "date-time":
            return prefix + gettext(
                "Not a date and time with a time zone (e.g. 2026-02-05T20:00:00Z)."
            )
        if error.validator_value in ("uri", "url", "iri"):
            return prefix + gettext("Not an absolute URL (e.g. https://example.com/event/abc123).")
        return prefix + gettext("Not a valid %(format)s.") % {"format": error.validator_value}
    if error.validator in ("enum", "const"):
        return prefix + gettext("Choose one of the listed values.")
    if error.validator == "additionalProperties":
        return prefix + error.message
    return prefix + error.message


# -- the request body --------------------------------------------------------------------------


def stored_order(value: Any) -> Any:
    """`value` with object keys in jsonb's order (shorter first, then bytewise)."""
    if isinstance(value, dict):
        return {
            key: stored_order(value[key])
            for key in sorted(value, key=lambda key: (len(key.encode()), key.encode()))
        }
    if isinstance(value, list):
        return [stored_order(item) for item in value]
    return value


def request_body(*, topic_key: str, context: dict[str, Any]) -> str:
    """The exact minified body of the run request for one topic (no secrets: those are headers)."""
    return minified_json({"topic_key": topic_key, "context": stored_order(context)}).decode()


def schema_diff(previous: dict[str, Any] | None, current: dict[str, Any]) -> str:
    """A unified diff of two schema versions, pretty-printed with sorted keys."""
    import difflib

    def lines(schema: dict[str, Any] | None) -> list[str]:
        if schema is None:
            return []
        return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False).splitlines()

    return "\n".join(
        difflib.unified_diff(
            lines(previous), lines(current), "previous", "this version", lineterm="", n=2
        )
    )
