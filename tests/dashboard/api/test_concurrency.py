"""Fifty concurrent identical requests with one Idempotency-Key make exactly one run.

Each thread has its own database connection and transaction (transaction=True), as fifty web
workers would: what holds is the unique key on the idempotency record, not luck in timing.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from dashboard.api.models import IdempotencyRecord
from dashboard.models import AuditEvent
from dashboard.runs.models import Run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

REQUESTS = 50


def _post_all(client, body, key: str, count: int = REQUESTS, path: str = "daily-trigger") -> list:
    start = threading.Barrier(count)

    def one(_: int):
        try:
            start.wait(timeout=60)
            return client.post(path, body, HTTP_IDEMPOTENCY_KEY=key)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def test_fifty_identical_requests_make_one_run(make_token, daily_connection):
    _, client = make_token("marketer")
    body = {"files_uploaded_attested": True, "wait_time_for_validation_seconds": 5}
    responses = _post_all(client, body, "nightly-run-1")
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * (REQUESTS - 1) + [201], statuses
    assert sum(response.get("Idempotency-Replayed") == "true" for response in responses) == 49
    assert len({response.json()["id"] for response in responses}) == 1
    assert Run.objects.count() == 1
    assert IdempotencyRecord.objects.count() == 1
    assert AuditEvent.objects.filter(action="run.requested").count() == 1
    assert AuditEvent.objects.filter(action="api.called").count() == REQUESTS


def test_concurrent_requests_one_key_another_body_are_all_422(make_token, daily_connection):
    _, client = make_token("marketer")
    first = client.post(
        "daily-trigger", {"files_uploaded_attested": True}, HTTP_IDEMPOTENCY_KEY="k"
    )
    assert first.status_code == 201
    other = {"files_uploaded_attested": True, "wait_time_for_validation_seconds": 7}
    # Twenty, not fifty: the server's connection limit (100) is shared with the other tests and
    # the previous test's fifty connections may still be closing.
    responses = _post_all(client, other, "k", count=20)
    assert {response.status_code for response in responses} == {422}
    assert {response.json()["code"] for response in responses} == {"idempotency_key_reused"}
    assert Run.objects.count() == 1


def test_concurrent_identical_generator_runs_make_one_trigger_group(make_token, generator):
    from campaigns.event_generators.models import TriggerGroup
    from tests.dashboard.api.conftest import ARSENAL, CHELSEA, GOOD, MATCH_START

    _, client = make_token("marketer")
    body = {"topic_keys": [ARSENAL, CHELSEA], "context": GOOD}
    path = f"event-generators/{MATCH_START}/run"
    responses = _post_all(client, body, "match-7", count=20, path=path)
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 19 + [201], statuses
    assert len({response.json()["trigger_group_id"] for response in responses}) == 1
    assert TriggerGroup.objects.count() == 1 and Run.objects.count() == 2


def test_concurrent_identical_altcraft_launches_make_one_launch(make_token, altcraft_trigger):
    from campaigns.altcraft_launches.models import AltcraftLaunch

    _, client = make_token("marketer")
    body = {"trigger": 8, "recipients": ["a@example.com", "b@example.com"]}
    responses = _post_all(client, body, "cart-7", count=20, path="altcraft/launches")
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 19 + [201], statuses
    assert len({response.json()["id"] for response in responses}) == 1
    assert AltcraftLaunch.objects.count() == 1 and Run.objects.count() == 1
