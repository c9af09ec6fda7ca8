"""Who hears of an Altcraft launch awaiting approval, and of its outcome: the tenant's approvers
by mail, each with their own one-time approval link (dashboard/approval_links), and the tenant's
chat webhooks (dashboard/chat_webhooks) with a link to the launch's page, never a token. Both
leave after the commit; neither ever blocks or fails the launch."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse
from django.utils.translation import gettext as _

from campaigns.altcraft_launches.models import AltcraftLaunch
from dashboard.approval_links.mail import approvers_notify
from dashboard.chat_webhooks.services import ChatNews, chat_announce


def launch_approval_needed(*, launch: AltcraftLaunch) -> None:
    """Tell the approvers (never the uploader) and the chat that `launch` waits for approval.
    Call it in the transaction that moved it to awaiting approval."""
    deadline = launch.approval_deadline or launch.expires_at
    url = _launch_url(launch)
    body = _(
        "%(who)s asks to send the Altcraft launch #%(number)s in %(tenant)s:\n"
        "  %(kind)s to trigger %(trigger)s: %(file)s\n"
        "  %(recipients)s recipients, file SHA-256 %(sha256)s\n\n"
        "It needs %(needed)s approval(s) before anything is sent.\n"
        "It expires at %(deadline)s UTC if nobody approves it.\n\n"
        "Review it: %(url)s\n"
    ) % {
        "who": launch.created_by_label,
        "number": launch.pk,
        "tenant": launch.tenant.name,
        "kind": launch.get_kind_display(),
        "trigger": launch.trigger.name,
        "file": launch.source_name,
        "recipients": f"{launch.rows_valid:,}",
        "sha256": launch.source_sha256,
        "needed": launch.approvals_needed,
        "deadline": f"{deadline:%Y-%m-%d %H:%M}",
        "url": url,
    }
    approvers_notify(
        tenant=launch.tenant,
        subject_type="altcraft_launch",
        subject_id=launch.pk,
        requester_id=launch.created_by_id,
        expires_at=deadline,
        subject=_("Approval needed: Altcraft launch #%(number)s, %(trigger)s")
        % {"number": launch.pk, "trigger": launch.trigger.name},
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
            title=_("Altcraft launch #%(number)s: %(trigger)s")
            % {"number": launch.pk, "trigger": launch.trigger.name},
            what=_("%(kind)s, %(recipients)s recipients")
            % {"kind": launch.get_kind_display(), "recipients": f"{launch.rows_valid:,}"},
            who=who,
            reasons=[str(reason) for reason in launch.approval_reasons or []]
            if event == "requested"
            else [],
            comment=comment,
            link=_launch_url(launch),
        ),
    )
