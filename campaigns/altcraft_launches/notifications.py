"""Who hears of an Altcraft launch awaiting approval, and of its outcome: the tenant's approvers
by mail, each with their own one-time approval link (dashboard/approval_links), and the tenant's
chat webhooks (dashboard/chat_webhooks) with a link to the launch's page, never a token. Both
leave after the commit; neither ever blocks or fails the launch."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse

from campaigns.altcraft_launches.models import AltcraftLaunch
from dashboard.approval_links.mail import approvers_notify
from dashboard.chat_webhooks.services import ChatNews, chat_announce


def launch_approval_needed(*, launch: AltcraftLaunch) -> None:
    """Tell the approvers (never the uploader) and the chat that `launch` waits for approval.
    Call it in the transaction that moved it to awaiting approval."""
    deadline = launch.approval_deadline or launch.expires_at
    url = _launch_url(launch)
    body = (
        f"{launch.created_by_label} asks to send the Altcraft launch #{launch.pk} in "
        f"{launch.tenant.name}:\n"
        f"  {launch.get_kind_display()} to trigger {launch.trigger.name}: {launch.source_name}\n"
        f"  {launch.rows_valid:,} recipients, file SHA-256 {launch.source_sha256}\n\n"
        f"It needs {launch.approvals_needed} approval(s) before anything is sent.\n"
        f"It expires at {deadline:%Y-%m-%d %H:%M} UTC if nobody approves it.\n\n"
        f"Review it: {url}\n"
    )
    approvers_notify(
        tenant=launch.tenant,
        subject_type="altcraft_launch",
        subject_id=launch.pk,
        requester_id=launch.created_by_id,
        expires_at=deadline,
        subject=f"Approval needed: Altcraft launch #{launch.pk}, {launch.trigger.name}",
        body=body,
    )
    _chat(launch, "requested", who=launch.created_by_label)


def launch_decided(
    *, launch: AltcraftLaunch, approved: bool, decided_by: str, comment: str
) -> None:
    """Tell the chat that `launch` was approved (and is being sent) or rejected."""
    _chat(launch, "approved" if approved else "rejected", who=decided_by, comment=comment)


def launch_expired(*, launch: AltcraftLaunch) -> None:
    """Tell the chat that nobody approved `launch` before its upload expired."""
    _chat(launch, "expired")


def _launch_url(launch: AltcraftLaunch) -> str:
    path = reverse("altcraft_launch_detail", args=[launch.tenant.slug, launch.pk])
    return f"{settings.SITE_URL}{path}"


def _chat(launch: AltcraftLaunch, event: str, *, who: str = "", comment: str = "") -> None:
    chat_announce(
        tenant=launch.tenant,
        news=ChatNews(
            event=event,
            tenant=launch.tenant.name,
            title=f"Altcraft launch #{launch.pk}: {launch.trigger.name}",
            what=f"{launch.get_kind_display()}, {launch.rows_valid:,} recipients",
            who=who,
            reasons=[str(reason) for reason in launch.approval_reasons or []]
            if event == "requested"
            else [],
            comment=comment,
            link=_launch_url(launch),
        ),
    )
