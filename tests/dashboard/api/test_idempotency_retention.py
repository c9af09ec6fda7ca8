"""Idempotency-Key records are forgotten after API_IDEMPOTENCY_RETENTION_HOURS, in bounded
batches, by an hourly beat task. What a key answers once its record is gone is tested with the
endpoints (test_endpoints.py and each app's test_api.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dashboard.api import services, tasks
from dashboard.api.models import IdempotencyRecord
from dashboard.project.celery import app
from tests.factories import IdempotencyRecordFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def frozen_now(monkeypatch):
    """The clock stands still at NOW (dashboard.clock reads django.utils.timezone.now)."""
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    return NOW


def hours_ago(hours: float, *, seconds: int = 0) -> datetime:
    return NOW - timedelta(hours=hours, seconds=seconds)


def test_records_older_than_the_retention_are_deleted_newer_ones_kept(
    team, other_team, frozen_now, settings
):
    settings.API_IDEMPOTENCY_RETENTION_HOURS = 24
    old = IdempotencyRecordFactory(tenant=team.tenant, key="k", created_at=hours_ago(24, seconds=1))
    old_elsewhere = IdempotencyRecordFactory(tenant=other_team.tenant, created_at=hours_ago(30))
    on_the_boundary = IdempotencyRecordFactory(tenant=team.tenant, created_at=hours_ago(24))
    fresh = IdempotencyRecordFactory(tenant=team.tenant, created_at=hours_ago(1))
    # The same key in another tenant is another record, with its own age.
    same_key_elsewhere = IdempotencyRecordFactory(
        tenant=other_team.tenant, key="k", created_at=hours_ago(2)
    )

    assert services.idempotency_records_expire() == 2

    remaining = set(IdempotencyRecord.objects.values_list("pk", flat=True))
    assert remaining == {on_the_boundary.pk, fresh.pk, same_key_elsewhere.pk}
    assert not {old.pk, old_elsewhere.pk} & remaining


def test_the_retention_comes_from_the_setting(team, frozen_now, settings):
    settings.API_IDEMPOTENCY_RETENTION_HOURS = 2
    IdempotencyRecordFactory(tenant=team.tenant, created_at=hours_ago(3))
    kept = IdempotencyRecordFactory(tenant=team.tenant, created_at=hours_ago(1))

    assert services.idempotency_records_expire() == 1
    assert list(IdempotencyRecord.objects.values_list("pk", flat=True)) == [kept.pk]


def test_records_are_deleted_in_bounded_batches(team, frozen_now):
    for age in range(25, 30):
        IdempotencyRecordFactory(tenant=team.tenant, created_at=hours_ago(age))
    kept = IdempotencyRecordFactory(tenant=team.tenant, created_at=hours_ago(1))

    with CaptureQueriesContext(connection) as queries:
        assert services.idempotency_records_expire(batch_size=2) == 5

    deletes = [query["sql"] for query in queries if query["sql"].startswith("DELETE")]
    # 5 records, at most 2 ids per statement: 2 + 2 + 1.
    assert len(deletes) == 3
    assert list(IdempotencyRecord.objects.values_list("pk", flat=True)) == [kept.pk]
    assert services.idempotency_records_expire(batch_size=2) == 0


def test_a_retention_under_one_hour_is_refused_and_nothing_is_deleted(team, frozen_now, settings):
    settings.API_IDEMPOTENCY_RETENTION_HOURS = 0
    IdempotencyRecordFactory(tenant=team.tenant, created_at=hours_ago(1))

    with pytest.raises(ImproperlyConfigured, match="API_IDEMPOTENCY_RETENTION_HOURS"):
        services.idempotency_records_expire()
    assert IdempotencyRecord.objects.count() == 1


def test_the_task_is_a_thin_caller_of_the_service(monkeypatch):
    calls = []
    monkeypatch.setattr(
        services, "idempotency_records_expire", lambda **kwargs: calls.append(kwargs) or 7
    )
    assert tasks.idempotency_records_expire() == 7
    assert calls == [{}]


def test_beat_runs_the_task_every_hour_on_the_poll_queue():
    entry = django_settings.CELERY_BEAT_SCHEDULE["expire-api-idempotency-records"]
    assert entry == {"task": "api.idempotency_records_expire", "schedule": 3600}
    assert "api.idempotency_records_expire" in app.tasks
    assert app.amqp.router.route({}, "api.idempotency_records_expire")["queue"].name == "poll"
    assert django_settings.API_IDEMPOTENCY_RETENTION_HOURS == 24
