"""Celery tasks of the campaigns app: thin callers of its services."""

from celery import shared_task

# Celery's autodiscovery imports only <app>.tasks: the launches' tasks are registered from here.
from campaigns.altcraft_launches import tasks as altcraft_launch_tasks  # noqa: F401
from campaigns.event_generators import services


@shared_task(name="campaigns.fire_due_schedules", acks_late=True, ignore_result=True)
def fire_due_schedules() -> int:
    """Fire every schedule whose time has come (beat every few seconds, plus a countdown)."""
    return services.schedules_fire_due()
