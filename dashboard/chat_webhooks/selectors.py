"""Reading a tenant's chat webhooks: hints only, never the URLs."""

from __future__ import annotations

from dashboard.chat_webhooks.models import ChatWebhook
from dashboard.models import Tenant


def chat_webhook_for(*, tenant: Tenant) -> ChatWebhook | None:
    """The tenant's chat webhook settings, or None when none was ever set."""
    return ChatWebhook.objects.filter(tenant=tenant).first()


def chat_webhook_state(*, tenant: Tenant) -> dict[str, str]:
    """What the pages, the API and the command show: each kind's hint, "" when not set."""
    webhook = chat_webhook_for(tenant=tenant)
    if webhook is None:
        return {"slack": "", "teams": ""}
    return {"slack": webhook.slack_url_hint, "teams": webhook.teams_url_hint}
