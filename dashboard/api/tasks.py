"""Celery tasks of the automation API: thin callers of dashboard.api.webhooks and
dashboard.api.services."""

from celery import shared_task
from django.db import transaction

from dashboard.api import services, webhooks
from dashboard.api.models import WebhookNotification


@shared_task(name="api.webhooks_dispatch", ignore_result=True)
def webhooks_dispatch() -> int:
    created = webhooks.webhooks_dispatch()
    for notification_id in created:
        transaction.on_commit(lambda pk=notification_id: webhook_deliver.delay(pk))
    return len(created)


@shared_task(name="api.webhook_deliver", bind=True, acks_late=True, ignore_result=True)
def webhook_deliver(self, notification_id: int) -> str:
    outcome = webhooks.webhook_deliver(notification_id=notification_id)
    if outcome == "retry":
        attempts = (
            WebhookNotification.objects.filter(pk=notification_id)
            .values_list("attempts", flat=True)
            .first()
        ) or 1
        # Not self.retry(): the attempt count lives in the database, not in the message.
        webhook_deliver.apply_async(
            (notification_id,), countdown=webhooks.retry_countdown(attempts)
        )
    return outcome


@shared_task(name="api.idempotency_records_expire", ignore_result=True)
def idempotency_records_expire() -> int:
    """Forget Idempotency-Keys past API_IDEMPOTENCY_RETENTION_HOURS (beat, every hour)."""
    return services.idempotency_records_expire()
