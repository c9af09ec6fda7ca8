"""Celery tasks of Altcraft launches (their runs are the engine's tasks)."""

from __future__ import annotations

from celery import shared_task

from campaigns.altcraft_launches import services


@shared_task(name="altcraft.expire_uploads", ignore_result=True)
def expire_uploads() -> int:
    """Housekeeping (beat, every 10 minutes): delete stored lists past their tenant's
    retention, and queue again the readings whose message was lost (or whose worker died)."""
    services.launches_reading_resume()
    return services.launches_expire()


@shared_task(name="altcraft.prepare_launch", acks_late=True, ignore_result=True)
def prepare_launch(
    launch_id: int, user_id: int | None = None, ip_address: str | None = None, label: str = ""
) -> str:
    """Read an upload and write its chunks: the preview (queued by the upload's request)."""
    return services.launch_prepare_queued(
        launch_id=launch_id, user_id=user_id, ip_address=ip_address, label=label
    )
