"""Celery tasks of the dashboard app that are not the run engine's (those are in
dashboard/runs/tasks.py): the audit check and the password-reset email."""

from celery import shared_task

from dashboard import password_reset
from dashboard.audit import audit_verify


@shared_task(name="audit.verify", ignore_result=True)
def verify_audit_trail(full: bool = False) -> dict[str, int]:
    """Nightly (beat): verify what was appended since the last checkpoint; weekly with `full`
    (beat): re-read every row. Alerts on failure."""
    report = audit_verify(full=full)
    return {"events_checked": report.events_checked, "problems": len(report.problems)}


@shared_task(name="auth.password_reset_email", ignore_result=True)
def send_password_reset_email(user_id: int) -> str:
    """Email one account its reset link (enqueued by password_reset_request after the commit)."""
    return password_reset.password_reset_email_send(user_id=user_id)
