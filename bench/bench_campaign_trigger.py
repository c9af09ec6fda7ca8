"""Campaign triggers: the schema-driven form, and a 1,000-topic fan-out for one brand.

1. Form render and server-side validation of a 50-field schema (strings, integers, numbers,
   booleans, enums, date-times, URIs, nested objects): the trigger page (GET), the live preview
   (POST: parse the form, validate with jsonschema, render the exact body), and parse + validate
   alone; p50/p95 over --iterations each.
2. One trigger for --topics topics of one generator (one run each) through two worker processes
   against the Optimove sandbox: the time to create the runs, executions/s at the sandbox ÷ the
   500/s limit, and the 429s the sandbox answered (goal 0).

Usage: .venv/bin/python bench/bench_campaign_trigger.py [--iterations 200] [--topics 1000]
It prints its figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import time
import uuid

from stack import bench_stack, percentile, print_figure, sandbox_seconds

LIMIT_PER_SECOND = 500
MATCH_START = "00000000-abcd-abcd-abcd-000000000000"


def fifty_field_schema() -> dict:
    kinds = [
        {"type": "string", "minLength": 1},
        {"type": "integer", "minimum": 0},
        {"type": "number"},
        {"type": "boolean"},
        {"enum": ["gold", "silver", "bronze"]},
        {"type": "string", "format": "date-time"},
        {"type": "string", "format": "uri"},
    ]
    properties = {}
    for number in range(40):
        properties[f"field_{number:02d}"] = {
            **kinds[number % len(kinds)],
            "description": f"Field {number}",
        }
    properties["venue"] = {
        "type": "object",
        "properties": {f"part_{n}": kinds[n % len(kinds)] for n in range(10)},
        "required": ["part_0"],
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": properties,
        "required": [f"field_{n:02d}" for n in range(0, 40, 2)],
    }


def form_values(schema: dict) -> dict[str, str]:
    samples = {
        "string": "text",
        "integer": "12",
        "number": "1.5",
        "boolean": "true",
        "enum": '"gold"',
        "date-time": "2026-02-05T20:00:00",
        "uri": "https://example.com/x",
    }
    from campaigns.event_generators.schema import leaf_fields

    return {field.name: samples[field.kind] for field in leaf_fields(schema)}


def timed(function, iterations: int) -> tuple[float, float]:
    durations = []
    for _ in range(iterations):
        started = time.perf_counter()
        function()
        durations.append((time.perf_counter() - started) * 1000)
    return percentile(durations, 0.5), percentile(durations, 0.95)


def bench_form(stack, connection, iterations: int) -> None:
    from django.test import Client
    from django.urls import reverse

    from campaigns.event_generators import schema as schemas
    from campaigns.event_generators.services import generator_create
    from dashboard.models import Role
    from dashboard.tenancy.services import membership_add

    schema = fifty_field_schema()
    generator = generator_create(
        actor=stack.actor,
        tenant=stack.tenant,
        connection=connection,
        external_id=str(uuid.uuid4()),
        name="Fifty fields",
        topics=[(str(uuid.uuid4()), "Topic")],
        schema=schema,
    )
    membership_add(actor=stack.actor, tenant=stack.tenant, user=stack.user, role=Role.MARKETER)
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(stack.user)
    page = reverse("event_generator_trigger", args=[stack.tenant.slug, generator.pk])
    preview = reverse("event_generator_trigger_preview", args=[stack.tenant.slug, generator.pk])
    values = form_values(schema)
    fields = len(schemas.leaf_fields(schema))
    posted = {"idempotency_key": "bench", "when": "now", **values}

    def render() -> None:
        assert client.get(page).status_code == 200

    def validate_and_preview() -> None:
        assert client.post(preview, posted).status_code == 200

    def parse_and_validate() -> None:
        context, errors = schemas.parse_form(schema, values)
        assert not errors and not schemas.context_errors(schema, context)

    for function in (render, validate_and_preview, parse_and_validate):
        function()  # warm up
    print(f"form of a {fields}-input schema, {iterations} iterations each:")
    for label, name, function in (
        ("trigger page render (GET)", "form_render", render),
        ("live preview: parse + validate + render (POST)", "form_preview", validate_and_preview),
        ("parse + jsonschema validation alone", "form_validate", parse_and_validate),
    ):
        p50, p95 = timed(function, iterations)
        print(f"  {label}: p50 {p50:.2f} ms, p95 {p95:.2f} ms")
        print_figure(f"{name}_p50_ms", p50)
        print_figure(f"{name}_p95_ms", p95)


def bench_fan_out(stack, connection, topics: int, timeout: float) -> None:
    from campaigns.event_generators.services import campaign_trigger, generator_create
    from dashboard.runs.models import Run

    generator = generator_create(
        actor=stack.actor,
        tenant=stack.tenant,
        connection=connection,
        external_id=MATCH_START,
        name="Match start",
        topics=[(str(uuid.UUID(int=n + 1)), f"Match {n}") for n in range(topics)],
        schema={"type": "object", "properties": {"match": {"type": "string"}}},
    )
    campaigns = stack.sandboxes["optimove_campaigns"]
    received_before = len(campaigns.received)
    started = time.monotonic()
    group = campaign_trigger(
        actor=stack.actor,
        generator=generator,
        topic_keys=list(generator.topics.values_list("key", flat=True)),
        context={"match": "Arsenal vs Chelsea"},
        idempotency_key=uuid.uuid4().hex,
    )
    created = time.monotonic() - started
    runs = Run.objects.filter(campaign_run__group=group)
    deadline = time.monotonic() + timeout
    while runs.exclude(state__in=["succeeded", "failed", "cancelled"]).exists():
        if time.monotonic() > deadline or stack.dead_workers():
            print("  stopped waiting (timeout or a worker died)")
            break
        time.sleep(0.5)
    settled = time.monotonic() - started
    received = list(campaigns.received)[received_before:]
    sends = sorted(sandbox_seconds(r.at) for r in received if r.route == "run" and r.status == 202)
    span = sends[-1] - sends[0] if len(sends) > 1 else float("nan")
    rate = (len(sends) - 1) / span if len(sends) > 1 else 0.0
    throttled = sum(campaigns.state()["throttled"].values())
    print(f"{topics}-topic trigger for one brand, 2 worker processes:")
    print(
        f"  runs created by the trigger in {created:.2f} s; all settled {settled:.1f} s after the click"
    )
    print(f"  runs succeeded: {runs.filter(state='succeeded').count()} of {topics}")
    print(f"  executions accepted: {len(sends)} over {span:.2f} s = {rate:.1f}/s")
    print(f"  EXECUTIONS/S / LIMIT: {rate / LIMIT_PER_SECOND:.3f} (limit 500/s)")
    print(f"  429s answered by the sandbox: {throttled} (goal 0)")
    print_figure("fan_out_create_seconds", created)
    print_figure("fan_out_executions_per_limit", rate / LIMIT_PER_SECOND)
    print_figure("fan_out_429s", throttled)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--topics", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    with bench_stack(pool="threads", concurrency=8, workers=2) as stack:
        connection = stack.connection("optimove_campaigns")
        bench_form(stack, connection, args.iterations)
        bench_fan_out(stack, connection, args.topics, args.timeout)


if __name__ == "__main__":
    main()
