"""The per-tenant webhook: tell a pipeline that a run ended, signed, retried, every attempt kept.

Each notification is `POST <url>` with the JSON body `{"event": "run.finished", "run": {...}}`
(the run as `GET runs/<id>` shows it, without the timeline) and the headers
`TriggerDesk-Event: run.finished`, `TriggerDesk-Delivery: <notification id>` and
`TriggerDesk-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the secret>`.
A receiver checks the signature and that `t` is recent, and treats the delivery id as
idempotent: a notification may arrive more than once (a lost 2xx is retried).

A dispatcher (Celery beat, every WEBHOOK_DISPATCH_SECONDS) finds runs that ended since the
webhook was set and creates one notification per run (a unique constraint makes that once);
a task delivers it, retrying with exponential backoff up to WEBHOOK_MAX_ATTEMPTS. The URL is
held to the vendor connections' destination rule (public https hosts, or the allow-list), so a
webhook cannot be pointed at the internal network.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils.translation import gettext as _

from dashboard.api.models import Webhook, WebhookDelivery, WebhookNotification
from dashboard.audit.trail import Actor, record_audit_event
from dashboard.clock import utc_now
from dashboard.models import Tenant
from dashboard.runs.models import Run
from dashboard.runs.states import TERMINAL_STATES
from dashboard.tenancy.crypto import decrypt_secret, encrypt_secret
from dashboard.vendors.destinations import DestinationNotAllowed, check_base_url
from dashboard.vendors.http import CheckedDestinationAdapter

DISPATCH_BATCH = 500
TIMEOUT_SECONDS = 10


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The TriggerDesk-Signature header value for `body` sent at `timestamp`."""
    digest = hmac.new(
        secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={digest}"


def webhook_set(*, actor: Actor, tenant: Tenant, url: str, is_active: bool = True) -> str:
    """Set (or replace) the tenant's webhook; returns the new signing secret, shown once."""
    url = (url or "").strip()
    if not url.startswith(("https://", "http://")):
        raise ValidationError({"url": _("An absolute https:// address.")})
    try:
        check_base_url(url)
    except DestinationNotAllowed as error:
        raise ValidationError({"url": str(error)}) from None
    secret = "whsec_" + secrets.token_urlsafe(32)
    with transaction.atomic():
        Webhook.objects.update_or_create(
            tenant=tenant,
            defaults={
                "url": url,
                "encrypted_secret": encrypt_secret(secret),
                "is_active": is_active,
                "active_since": utc_now(),
            },
        )
        record_audit_event(
            actor=actor,
            tenant=tenant,
            action="api_webhook.set",
            object_type="api_webhook",
            object_id=tenant.pk,
            summary={"url": url, "is_active": is_active},
        )
    return secret


def webhook_remove(*, actor: Actor, tenant: Tenant) -> None:
    """Remove the tenant's webhook; pending notifications are dropped with it."""
    with transaction.atomic():
        deleted, _ = Webhook.objects.filter(tenant=tenant).delete()
        if deleted:
            record_audit_event(
                actor=actor,
                tenant=tenant,
                action="api_webhook.removed",
                object_type="api_webhook",
                object_id=tenant.pk,
            )


def webhooks_dispatch() -> list[int]:
    """Create a notification for every run that ended since its tenant's webhook was set and
    was not notified yet; returns the new notifications' ids (the caller enqueues them)."""
    created: list[int] = []
    for webhook in Webhook.objects.filter(is_active=True):
        runs = (
            Run.objects.filter(
                tenant_id=webhook.tenant_id,
                state__in=list(TERMINAL_STATES),
                finished_at__gte=webhook.active_since,
            )
            .exclude(pk__in=WebhookNotification.objects.filter(webhook=webhook).values("run"))
            .order_by("finished_at")
            .values_list("pk", flat=True)[:DISPATCH_BATCH]
        )
        new = WebhookNotification.objects.bulk_create(
            [WebhookNotification(webhook=webhook, run_id=run_id) for run_id in runs],
            ignore_conflicts=True,
        )
        # ignore_conflicts gives no ids back: read the pending ones of these runs.
        if new:
            created += list(
                WebhookNotification.objects.filter(
                    webhook=webhook,
                    run_id__in=[n.run_id for n in new],
                    state=WebhookNotification.State.PENDING,
                    attempts=0,
                ).values_list("pk", flat=True)
            )
    return created


def _payload(run: Run) -> dict[str, Any]:
    # The same shape as the API's run (one description of a run for pipelines). Imported here:
    # the endpoints load django-ninja and pydantic, which a worker needs only when it delivers.
    from dashboard.api.endpoints import run_out

    return {"event": "run.finished", "run": run_out(run)}


def webhook_deliver(*, notification_id: int, session: requests.Session | None = None) -> str:
    """One attempt at delivering a notification, recorded whatever happens.

    Returns "delivered", "retry" (the caller retries with backoff) or "failed"/"skipped".
    """
    notification = (
        WebhookNotification.objects.select_related("webhook", "run__connection")
        .filter(pk=notification_id)
        .first()
    )
    if notification is None or notification.state != WebhookNotification.State.PENDING:
        return "skipped"
    webhook = notification.webhook
    body = json.dumps(_payload(notification.run), cls=DjangoJSONEncoder).encode("utf-8")
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "TriggerDesk-Webhook/1",
        "TriggerDesk-Event": "run.finished",
        "TriggerDesk-Delivery": str(notification.pk),
        "TriggerDesk-Signature": signature(
            decrypt_secret(webhook.encrypted_secret), timestamp, body
        ),
    }
    if session is None:
        session = requests.Session()
        session.mount("https://", CheckedDestinationAdapter())
        session.mount("http://", CheckedDestinationAdapter())
    attempt = notification.attempts + 1
    started = time.monotonic()
    status_code = None
    error = ""
    try:
        response = session.post(
            webhook.url, data=body, headers=headers, timeout=TIMEOUT_SECONDS, allow_redirects=False
        )
        status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"The receiver answered {status_code}."
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: could not reach the receiver."
    latency_ms = (time.monotonic() - started) * 1000
    delivered = not error
    if delivered:
        state = WebhookNotification.State.DELIVERED
    elif attempt >= settings.WEBHOOK_MAX_ATTEMPTS:
        state = WebhookNotification.State.FAILED
    else:
        state = WebhookNotification.State.PENDING
    with transaction.atomic():
        WebhookDelivery.objects.create(
            notification=notification,
            attempt=attempt,
            attempted_at=utc_now(),
            status_code=status_code,
            error=error[:500],
            latency_ms=latency_ms,
        )
        WebhookNotification.objects.filter(pk=notification.pk).update(attempts=attempt, state=state)
    if delivered:
        return "delivered"
    return "failed" if state == WebhookNotification.State.FAILED else "retry"


def retry_countdown(attempt: int) -> float:
    """Seconds before attempt `attempt + 1`: 10 s doubling, at most an hour."""
    return float(min(3600, 10 * 2 ** max(0, attempt - 1)))
