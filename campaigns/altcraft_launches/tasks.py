"""Celery tasks of Altcraft launches (their runs are the engine's tasks)."""

from __future__ import annotations

from celery import shared_task

from campaigns.altcraft_launches import services


@shared_task(name="altcraft.expire_uploads", ignore_result=True)
def expire_uploads() -> int:
    """Delete stored lists past their tenant's retention (beat, every 10 minutes)."""
    return services.launches_expire()
