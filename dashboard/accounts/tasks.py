"""Celery task of accounts: the password-reset email, sent off the web request."""

from celery import shared_task

from dashboard.accounts import password_reset


@shared_task(name="auth.password_reset_email", ignore_result=True)
def send_password_reset_email(user_id: int, language: str = "") -> str:
    """Email one account its reset link (enqueued by password_reset_request after the commit),
    in its language (`language`: the requesting browser's, for a person who never chose)."""
    return password_reset.password_reset_email_send(user_id=user_id, language=language)
