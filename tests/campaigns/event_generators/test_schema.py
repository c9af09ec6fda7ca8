"""Schema → form → context → validation, checked against jsonschema itself (hypothesis)."""

from __future__ import annotations

import copy
import json
from datetime import datetime

import pytest
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigns.event_generators import schema as schemas
from tests.campaigns.conftest import GOOD_CONTEXT, MATCH_SCHEMA


def jsonschema_accepts(schema, context) -> bool:
    return schemas.validator_for(schema).is_valid(context)


def test_fields_cover_every_kind_with_labels_help_required_and_defaults():
    fields = {field.name: field for field in schemas.form_fields(MATCH_SCHEMA)}
    assert fields["ctx/match_id"].kind == "string"
    assert fields["ctx/match_id"].label == "Match id"
    assert fields["ctx/match_id"].description == "Our id of the match"
    assert fields["ctx/match_id"].required
    assert fields["ctx/start_time"].kind == "date-time"
    assert fields["ctx/minute"].kind == "integer" and fields["ctx/minute"].attributes == {
        "min": 0,
        "max": 130,
    }
    assert fields["ctx/odds"].kind == "number"
    assert fields["ctx/live"].kind == "boolean"
    assert fields["ctx/league"].kind == "enum"
    assert [value for value, _ in fields["ctx/league"].choices] == ['"NFL"', '"EPL"', '"NBA"']
    assert fields["ctx/url"].kind == "uri"
    venue = fields["ctx/venue"]
    assert venue.kind == "object" and not venue.required
    assert [(child.name, child.required) for child in venue.children] == [
        ("ctx/venue/name", True),
        ("ctx/venue/city", False),
    ]
    assert schemas.form_initial(MATCH_SCHEMA) == {"ctx/minute": "0"}


def test_form_values_become_typed_context():
    data = {
        "ctx/match_id": "m1",
        "ctx/match_name": "Arsenal vs Chelsea",
        "ctx/start_time": "2026-02-05T20:00",
        "ctx/minute": "12",
        "ctx/odds": "1.5",
        "ctx/live": "true",
        "ctx/league": '"EPL"',
        "ctx/url": "https://example.com/e/1",
        "ctx/venue/name": "Emirates",
        "ctx/venue/city": "",
    }
    context, errors = schemas.parse_form(MATCH_SCHEMA, data)
    assert errors == {}
    assert context == {
        "match_id": "m1",
        "match_name": "Arsenal vs Chelsea",
        "start_time": "2026-02-05T20:00:00Z",
        "minute": 12,
        "odds": 1.5,
        "live": True,
        "league": "EPL",
        "url": "https://example.com/e/1",
        "venue": {"name": "Emirates"},
    }
    assert schemas.context_errors(MATCH_SCHEMA, context) == {}


def test_each_failing_field_is_named():
    context, _ = schemas.parse_form(
        MATCH_SCHEMA,
        {
            "ctx/match_name": "ab",
            "ctx/start_time": "tomorrow",
            "ctx/minute": "twelve",
            "ctx/url": "not a url",
            "ctx/venue/city": "London",
        },
    )
    errors = schemas.context_errors(MATCH_SCHEMA, context)
    assert set(errors) == {
        "ctx/match_id",
        "ctx/match_name",
        "ctx/start_time",
        "ctx/minute",
        "ctx/url",
        "ctx/venue/name",
    }
    assert errors["ctx/match_id"] == ["This field is required."]
    assert errors["ctx/minute"] == ["Expected a whole number."]
    assert "time zone" in errors["ctx/start_time"][0]
    assert "URL" in errors["ctx/url"][0]


def test_request_body_is_minified_in_stored_key_order():
    body = schemas.request_body(topic_key="t", context={"url": "u", "a": {"zz": 1, "b": 2}})
    assert body == '{"topic_key":"t","context":{"a":{"b":2,"zz":1},"url":"u"}}'


@pytest.mark.parametrize(
    "schema, message",
    [
        ([], "must be a JSON object"),
        ({"type": "object", "properties": {"a": {"type": "strin"}}}, "properties/a/type"),
        ({"type": "array"}, '"type": "object"'),
        ({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}, "2020-12"),
        ({"type": "object", "minProperties": -1}, "minProperties"),
    ],
)
def test_invalid_schemas_are_refused_with_the_reason(schema, message):
    with pytest.raises(ValidationError) as raised:
        schemas.check_schema(schema)
    assert message in " ".join(raised.value.messages)


def test_schema_text_that_is_not_json_is_refused():
    with pytest.raises(ValidationError, match="not JSON"):
        schemas.parse_schema_text("{type: object")


# -- round trips with hypothesis -----------------------------------------------------------------

# The strategy schema: the shapes the form renders, without formats hypothesis-jsonschema
# generates loosely (date-time and uri are covered by their own strategies below).
ROUND_TRIP_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 20},
        "count": {"type": "integer", "minimum": -1000, "maximum": 1000},
        "ratio": {"type": "number", "minimum": 0, "maximum": 10},
        "flag": {"type": "boolean"},
        "league": {"enum": ["NFL", "EPL", 3, None]},
        "venue": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "minLength": 1},
                "capacity": {"type": "integer", "minimum": 0},
            },
            "required": ["city"],
            "additionalProperties": False,
        },
    },
    "required": ["name", "count"],
    "additionalProperties": False,
}


def from_schema(schema):
    """Contexts a schema accepts, drawn from its shape (hypothesis-jsonschema does not work with
    this hypothesis version): required properties always, optional ones sometimes."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        return st.text(min_size=schema.get("minLength", 0), max_size=schema.get("maxLength", 30))
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        return st.one_of(
            st.integers(schema.get("minimum"), schema.get("maximum")),
            st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False),
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "object":
        required = set(schema.get("required", []))
        properties = schema.get("properties", {})
        return st.fixed_dictionaries(
            {key: from_schema(sub) for key, sub in properties.items() if key in required},
            optional={
                key: from_schema(sub) for key, sub in properties.items() if key not in required
            },
        )
    raise AssertionError(f"no strategy for {schema}")


def to_form(schema, context) -> dict[str, str]:
    return schemas.form_initial(schema, context)


def representable(value) -> bool:
    """A form cannot say "empty string" apart from "left out"; such contexts are skipped."""
    if isinstance(value, dict):
        return all(representable(item) for item in value.values())
    return value != ""


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(context=from_schema(ROUND_TRIP_SCHEMA))
def test_valid_contexts_survive_the_form_and_are_accepted(context):
    parsed, errors = schemas.parse_form(ROUND_TRIP_SCHEMA, to_form(ROUND_TRIP_SCHEMA, context))
    assert errors == {}
    if representable(context):
        assert parsed == context
    assert (schemas.context_errors(ROUND_TRIP_SCHEMA, parsed) == {}) is jsonschema_accepts(
        ROUND_TRIP_SCHEMA, parsed
    )
    assert jsonschema_accepts(ROUND_TRIP_SCHEMA, parsed)


field_text = st.one_of(
    st.just(""),
    st.text(max_size=8),
    st.integers(-2000, 2000).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(['"NFL"', '"EPL"', "3", "null", '"MLB"', "true", "false", "{"]),
)


@settings(max_examples=300, deadline=None)
@given(
    data=st.fixed_dictionaries(
        {},
        optional={
            name: field_text
            for name in (
                "ctx/name",
                "ctx/count",
                "ctx/ratio",
                "ctx/flag",
                "ctx/league",
                "ctx/venue/city",
                "ctx/venue/capacity",
            )
        },
    )
)
def test_any_form_input_is_accepted_exactly_when_jsonschema_accepts_it(data):
    parsed, parse_errors = schemas.parse_form(ROUND_TRIP_SCHEMA, data)
    assert parse_errors == {}  # only JSON fields have parse errors; this schema has none
    errors = schemas.context_errors(ROUND_TRIP_SCHEMA, parsed)
    assert (errors == {}) is jsonschema_accepts(ROUND_TRIP_SCHEMA, parsed)
    # Every failing field is named by its input.
    for name in errors:
        assert name == schemas.NON_FIELD or name.startswith("ctx/")


@settings(max_examples=100, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1)),
    url=st.sampled_from(["https://example.com/x?y=1", "http://a.b/c", "not a url", "x", ""]),
    text=st.text(max_size=6),
)
def test_date_times_and_urls_follow_jsonschema(moment, url, text):
    schema = copy.deepcopy(MATCH_SCHEMA)
    data = {
        "ctx/match_id": "m",
        "ctx/match_name": "name",
        "ctx/start_time": moment.replace(microsecond=0).isoformat(),
        "ctx/url": url,
        "ctx/venue/name": text,
    }
    parsed, _ = schemas.parse_form(schema, data)
    assert parsed["start_time"].endswith("Z")
    errors = schemas.context_errors(schema, parsed)
    assert (errors == {}) is jsonschema_accepts(schema, parsed)
    assert ("ctx/url" in errors) is (url in ("not a url", "x", ""))


def test_good_context_is_accepted():
    assert schemas.context_errors(MATCH_SCHEMA, GOOD_CONTEXT) == {}
    assert json.loads(schemas.request_body(topic_key="k", context=GOOD_CONTEXT))["context"] == (
        GOOD_CONTEXT
    )


def test_several_missing_required_fields_are_each_named_once():
    # jsonschema reports one "required" error per missing property; the form shows one line each.
    errors = schemas.context_errors(MATCH_SCHEMA, {})
    required = [name for name, messages in errors.items() if "This field is required." in messages]
    assert len(required) >= 2
    for name in required:
        assert errors[name] == ["This field is required."], name
