"""Celery task of the audit trail: its scheduled verification (beat)."""

from celery import shared_task

from dashboard.audit.trail import audit_verify


@shared_task(name="audit.verify", ignore_result=True)
def verify_audit_trail(full: bool = False) -> dict[str, int]:
    """Nightly (beat): verify what was appended since the last checkpoint; weekly with `full`
    (beat): re-read every row. Alerts on failure."""
    report = audit_verify(full=full)
    return {"events_checked": report.events_checked, "problems": len(report.problems)}
