"""Who is told what by email (issue 9, item 16): the tenant's approvers when a request waits for
them (requests expire, after 2 hours by default), the requester when it is approved, rejected or
expired.

Mails leave after the transaction that made the change commits (`transaction.on_commit`), so a
rolled-back change tells nobody, and a mail server that is down never undoes or blocks a run: the
failure is logged and the run page still says everything. Mails carry what a person needs to
decide and a link; never parameters' secrets (runs hold none) nor anything from a vendor answer.

Each approver's mail also carries their own one-time approval link (dashboard/approval_links),
and the same news goes to the tenant's chat webhooks (dashboard/chat_webhooks) with a link to
the run's page, never a one-time token.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils.translation import gettext as _

from dashboard.approval_links.mail import link_text
from dashboard.approval_links.services import approval_links_issue
from dashboard.chat_webhooks.services import ChatNews, chat_announce
from dashboard.clock import utc_now
from dashboard.models import ROLE_PERMISSIONS, Membership, Permission
from dashboard.runs.models import Run
from dashboard.runs.selectors import run_description

logger = logging.getLogger(__name__)

APPROVER_ROLES = [role for role, perms in ROLE_PERMISSIONS.items() if Permission.APPROVE in perms]


def approval_needed(*, run: Run) -> None:
    """Tell the tenant's approvers (all but the requester) that `run` waits for one of them,
    each with their own one-time approval link, and the tenant's chat."""
    _chat(run, "requested", who=run.requested_by_label or "Someone")
    recipients = _approvers(run)
    if not recipients:
        return
    expires = (
        f"It expires at {run.approval_expires_at:%Y-%m-%d %H:%M} UTC if nobody approves it.\n"
        if run.approval_expires_at
        else ""
    )
    subject = f"Approval needed: run #{run.pk}, {run.name}"
    body = (
        f"{run.requested_by_label or 'Someone'} requested run #{run.pk} in {run.tenant.name}:\n"
        f"{_what(run)}"
        f"  on {run.connection_name or run.connection.name}\n\n"
        f"It needs a second person's approval before anything is sent.\n{expires}\n"
        f"Review it: {_run_url(run)}\n"
    )
    # The links are made in the run's transaction: a rolled-back request leaves none behind.
    tokens = approval_links_issue(
        tenant=run.tenant,
        subject_type="run",
        subject_id=run.pk,
        recipient_ids=[user_id for user_id, _address in recipients],
        expires_at=run.approval_expires_at or utc_now(),
    )
    _send_after_commit(
        subject,
        {address: body + link_text(tokens[user_id]) for user_id, address in recipients},
    )


def request_decided(*, run: Run, approved: bool, decided_by: str, comment: str = "") -> None:
    """Tell the requester (and the tenant's chat) that `run` was approved (and is being sent)
    or rejected."""
    _chat(run, "approved" if approved else "rejected", who=decided_by, comment=comment)
    recipients = _requester_address(run)
    if not recipients:
        return
    verdict = "approved" if approved else "rejected"
    what_now = (
        "It is queued and is being sent to the vendor now."
        if approved
        else "Nothing was sent. Request it again if it is still needed."
    )
    said = f"\nTheir comment: {comment}\n" if comment else ""
    subject = f"Run #{run.pk} {verdict}: {run.name}"
    body = (
        f"{decided_by} {verdict} your request #{run.pk} in {run.tenant.name}:\n"
        f"{_what(run)}{said}\n{what_now}\n\n"
        f"See it: {_run_url(run)}\n"
    )
    _send_after_commit(subject, dict.fromkeys(recipients, body))


def request_expired(*, run: Run) -> None:
    """Tell the requester (and the tenant's chat) that nobody approved `run` in time."""
    _chat(run, "expired")
    recipients = _requester_address(run)
    if not recipients:
        return
    subject = f"Run #{run.pk} expired unapproved: {run.name}"
    body = (
        f"Nobody approved your request #{run.pk} in {run.tenant.name} in time:\n"
        f"{_what(run)}\n"
        "Nothing was sent. Request it again if it is still needed.\n\n"
        f"See it: {_run_url(run)}\n"
    )
    _send_after_commit(subject, dict.fromkeys(recipients, body))


# -- helpers ----------------------------------------------------------------------------------


def _approvers(run: Run) -> list[tuple[int, str]]:
    """(user id, address) of each approver who gets the mail, by address."""
    members = (
        Membership.objects.filter(tenant_id=run.tenant_id, role__in=APPROVER_ROLES)
        .exclude(user_id=run.requested_by_id)
        .filter(user__is_active=True)
        .exclude(user__email="")
        .values_list("user_id", "user__email")
    )
    return sorted(set(members), key=lambda member: (member[1], member[0]))


def _chat(run: Run, event: str, *, who: str = "", comment: str = "") -> None:
    chat_announce(
        tenant=run.tenant,
        news=ChatNews(
            event=event,
            tenant=run.tenant.name,
            title=_("Run #%(number)s: %(name)s") % {"number": run.pk, "name": run.name},
            what=run_description(run),
            who=who,
            reasons=[str(reason) for reason in run.approval_reasons or []]
            if event == "requested"
            else [],
            comment=comment,
            link=_run_url(run),
        ),
    )


def _requester_address(run: Run) -> list[str]:
    if run.requested_by_id is None:
        return []
    user = get_user_model().objects.filter(pk=run.requested_by_id, is_active=True).first()
    email = getattr(user, "email", "") if user is not None else ""
    return [email] if email else []


def _what(run: Run) -> str:
    """The run's title as it was requested, then its parameters' ids (each on its own line)."""
    return f"  {run.name}\n  ({run_description(run)})\n"


def _run_url(run: Run) -> str:
    path = reverse("run_detail", args=[run.tenant.slug, run.pk])
    return f"{settings.SITE_URL}{path}"


def _send_after_commit(subject: str, bodies: dict[str, str]) -> None:
    """Send `subject` to each address with its own body, after the commit."""

    def send() -> None:
        # One mail per person: no one learns the others' addresses (nor their links).
        for address, body in bodies.items():
            try:
                send_mail(subject, body, None, [address])
            except Exception as error:  # a mail server's trouble must not fail the run's commit
                logger.warning("could not send the mail %r to %s: %s", subject, address, error)

    transaction.on_commit(send)
