"""Set, test and post to a tenant's chat webhooks.

A URL is validated (an absolute https address; plain http only for a loopback host in DEBUG or
on VENDOR_HOST_ALLOWLIST, as in the tests; never an internal address: the vendor connections'
destination rule), stored encrypted and shown as a hint. News is posted after the commit that
made it, by a Celery task per webhook that retries a few times and then gives up: a chat
receiver that is down never blocks, delays or fails an approval.
"""

from __future__ import annotations

import importlib
import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_variables

from dashboard.audit.trail import Actor, record_audit_event
from dashboard.chat_webhooks.messages import PAYLOADS
from dashboard.chat_webhooks.models import ChatWebhook
from dashboard.clock import utc_now
from dashboard.models import Tenant
from dashboard.tenancy.crypto import decrypt_secret, encrypt_secret
from dashboard.vendors.destinations import DestinationNotAllowed, check_base_url

logger = logging.getLogger(__name__)

KINDS = ("slack", "teams")
KIND_LABELS = {"slack": "Slack", "teams": "Microsoft Teams"}
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
TIMEOUT_SECONDS = 10
MAX_URL_LENGTH = 1000
POST_TASK = "chat_webhooks.post"


@dataclass
class ChatNews:
    """What one post says: an approval `event` ("requested", "approved", "rejected",
    "expired", "test") about a request, with a link to its page (never a one-time token)."""

    event: str
    tenant: str
    title: str = ""
    what: str = ""
    who: str = ""
    reasons: list[str] = field(default_factory=list)
    comment: str = ""
    link: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@sensitive_variables("url")
def chat_webhook_url_check(url: str, *, kind: str) -> str:
    """The cleaned URL, or ValidationError({kind: message}) saying what is wrong with it."""
    url = (url or "").strip()
    label = KIND_LABELS[kind]
    if len(url) > MAX_URL_LENGTH:
        raise ValidationError(
            {kind: _("The %(label)s webhook URL is too long.") % {"label": label}}, code="invalid"
        )
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise ValidationError(
            {kind: _("The %(label)s webhook URL must be an https:// address.") % {"label": label}},
            code="invalid",
        )
    if parts.scheme == "http" and not (
        host in LOOPBACK_HOSTS
        and (settings.DEBUG or host in {h.strip("[]") for h in settings.VENDOR_HOST_ALLOWLIST})
    ):
        raise ValidationError(
            {
                kind: _(
                    "The %(label)s webhook URL must use https (plain http only for localhost "
                    "in development)."
                )
                % {"label": label}
            },
            code="invalid",
        )
    try:
        check_base_url(url)
    except DestinationNotAllowed:
        raise ValidationError(
            {
                kind: _(
                    "The %(label)s webhook URL points at a private or internal address; only "
                    "public hosts can be posted to."
                )
                % {"label": label}
            },
            code="invalid",
        ) from None
    return url


def url_hint(url: str) -> str:
    """What the pages show of a URL: its host and its last four characters."""
    parts = urlsplit(url)
    return f"{parts.hostname}/…{url[-4:]}"


@sensitive_variables("slack_url", "teams_url", "cleaned")
def chat_webhooks_set(
    *,
    actor: Actor,
    tenant: Tenant,
    reason: str,
    slack_url: str | None = None,
    teams_url: str | None = None,
) -> ChatWebhook:
    """Set, replace or remove the tenant's webhook URLs (None: leave as is; "": remove), with
    the reason why; audited as chat_webhook.changed (hints only, never a URL)."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(
            {"reason": _("Say why the chat webhooks change (it is audited).")}, code="invalid"
        )
    if slack_url is None and teams_url is None:
        raise ValidationError(_("Nothing to change: give a Slack or a Teams URL."), code="invalid")
    cleaned: dict[str, str | None] = {}
    for kind, url in (("slack", slack_url), ("teams", teams_url)):
        if url is None:
            cleaned[kind] = None
        elif not url.strip():
            cleaned[kind] = ""
        else:
            cleaned[kind] = chat_webhook_url_check(url, kind=kind)
    changes: dict[str, str] = {}
    with transaction.atomic():
        webhook, _created = ChatWebhook.objects.select_for_update().get_or_create(
            tenant=tenant, defaults={"updated_at": utc_now()}
        )
        for kind, url in cleaned.items():
            if url is None:
                continue
            setattr(webhook, f"{kind}_url_encrypted", encrypt_secret(url) if url else "")
            setattr(webhook, f"{kind}_url_hint", url_hint(url) if url else "")
            changes[kind] = url_hint(url) if url else "removed"
        webhook.updated_at = utc_now()
        webhook.updated_by_label = actor.display
        webhook.save()
        record_audit_event(
            actor=actor,
            tenant=tenant,
            action="chat_webhook.changed",
            object_type="chat_webhook",
            object_id=tenant.pk,
            summary={"changes": changes, "reason": reason},
        )
    return webhook


def chat_webhook_test(*, actor: Actor, tenant: Tenant) -> list[str]:
    """Post a test message to each of the tenant's webhooks (after the commit, by the worker);
    returns the kinds posted to. Audited as chat_webhook.test_requested."""
    webhook = ChatWebhook.objects.filter(tenant=tenant).first()
    targets = webhook.targets if webhook is not None else []
    if not targets:
        raise ValidationError(
            _("No chat webhook is set: set a Slack or Teams URL first."), code="not_set"
        )
    with transaction.atomic():
        record_audit_event(
            actor=actor,
            tenant=tenant,
            action="chat_webhook.test_requested",
            object_type="chat_webhook",
            object_id=tenant.pk,
            summary={"targets": targets},
        )
        _enqueue(tenant.pk, targets, ChatNews(event="test", tenant=tenant.name, who=actor.display))
    return targets


def chat_announce(*, tenant: Tenant, news: ChatNews) -> None:
    """Post `news` to the tenant's webhooks once the caller's transaction commits (nothing when
    it rolls back, or when the tenant has none). Never raises: chat is a courtesy."""
    try:
        webhook = (
            ChatWebhook.objects.filter(tenant_id=tenant.pk)
            .only("slack_url_encrypted", "teams_url_encrypted")
            .first()
        )
        if webhook is not None and webhook.targets:
            _enqueue(tenant.pk, webhook.targets, news)
    except Exception:
        logger.exception("Could not queue a chat post for tenant %s.", tenant.pk)


def _enqueue(tenant_id: int, targets: list[str], news: ChatNews) -> None:
    payload = news.as_dict()
    for target in targets:
        transaction.on_commit(lambda target=target: _delay(tenant_id, target, payload))


def _post_task() -> Any:
    """The registered chat post task (by name, as dashboard.runs.enqueue finds its tasks: the
    tasks module imports this one, and a web process never ran the worker's autodiscovery)."""
    tasks = current_app.tasks
    if POST_TASK not in tasks:
        importlib.import_module("dashboard.chat_webhooks.tasks")
    return tasks[POST_TASK]


def _delay(tenant_id: int, target: str, payload: dict[str, Any]) -> None:
    try:
        _post_task().delay(tenant_id, target, payload)
    except Exception:  # a broker that is down must not fail the request that committed
        logger.exception("Could not queue a %s chat post for tenant %s.", target, tenant_id)


def chat_post(*, tenant_id: int, target: str, news: dict[str, Any], session: Any = None) -> str:
    """One attempt at posting `news` to the tenant's `target` webhook ("slack" or "teams").

    Returns "posted", "retry" (a 5xx, 429 or network failure: the task tries again) or
    "skipped" (the webhook was removed meanwhile) / "failed" (a 4xx: retrying cannot help).
    The URL never appears in a log line."""
    # Imported here: requests and the checked adapter load only in the worker that posts.
    import requests

    from dashboard.vendors.http import CheckedDestinationAdapter  # (as requests, above)

    webhook = ChatWebhook.objects.filter(tenant_id=tenant_id).first()
    stored = getattr(webhook, f"{target}_url_encrypted", "") if webhook is not None else ""
    if not stored or target not in PAYLOADS:
        return "skipped"
    body = json.dumps(PAYLOADS[target](news)).encode("utf-8")
    if session is None:
        session = requests.Session()
        session.mount("https://", CheckedDestinationAdapter())
        session.mount("http://", CheckedDestinationAdapter())
    try:
        response = session.post(
            decrypt_secret(stored),
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": "TriggerDesk-Chat/1"},
            timeout=TIMEOUT_SECONDS,
            allow_redirects=False,
        )
    except requests.RequestException as error:
        logger.warning(
            "The %s chat webhook of tenant %s could not be reached (%s).",
            target,
            tenant_id,
            type(error).__name__,
        )
        return "retry"
    if 200 <= response.status_code < 300:
        return "posted"
    logger.warning(
        "The %s chat webhook of tenant %s answered %s.", target, tenant_id, response.status_code
    )
    if response.status_code == 429 or response.status_code >= 500:
        return "retry"
    return "failed"
