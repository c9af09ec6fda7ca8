"""Celery tasks of the campaigns app: thin callers of its services."""

from celery import shared_task

from campaigns.event_generators import services


@shared_task(name="campaigns.fire_due_schedules", acks_late=True, ignore_result=True)
def fire_due_schedules() -> int:
    """Fire every schedule whose time has come (beat every few seconds, plus a countdown)."""
    return services.schedules_fire_due()
