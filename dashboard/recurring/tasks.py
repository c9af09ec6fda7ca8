"""Celery task of recurring schedules: a thin caller of the service."""

from celery import shared_task

from dashboard.recurring import services


@shared_task(name="recurring.fire_due", acks_late=True, ignore_result=True)
def fire_due_recurring_schedules() -> int:
    """Fire every recurring schedule whose time has come (beat every few seconds)."""
    return services.recurring_fire_due()
