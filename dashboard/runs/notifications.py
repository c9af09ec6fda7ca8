"""Who is told what by email (issue 9, item 16): the tenant's approvers when a request waits for
them (requests expire, after 2 hours by default), the requester when it is approved, rejected or
expired.

Mails leave after the transaction that made the change commits (`transaction.on_commit`), so a
rolled-back change tells nobody, and a mail server that is down never undoes or blocks a run: the
failure is logged and the run page still says everything. Mails carry what a person needs to
decide and a link; never parameters' secrets (runs hold none) nor anything from a vendor answer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse

from dashboard.models import ROLE_PERMISSIONS, Membership, Permission
from dashboard.runs.models import Run
from dashboard.runs.selectors import run_description

logger = logging.getLogger(__name__)

APPROVER_ROLES = [role for role, perms in ROLE_PERMISSIONS.items() if Permission.APPROVE in perms]


def approval_needed(*, run: Run) -> None:
    """Tell the tenant's approvers (all but the requester) that `run` waits for one of them."""
    recipients = _approver_addresses(run)
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
    _send_after_commit(subject, body, recipients)


def request_decided(*, run: Run, approved: bool, decided_by: str, comment: str = "") -> None:
    """Tell the requester that `run` was approved (and is being sent) or rejected."""
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
    _send_after_commit(subject, body, recipients)


def request_expired(*, run: Run) -> None:
    """Tell the requester that nobody approved `run` in time."""
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
    _send_after_commit(subject, body, recipients)


# -- helpers ----------------------------------------------------------------------------------


def _approver_addresses(run: Run) -> list[str]:
    addresses = (
        Membership.objects.filter(tenant_id=run.tenant_id, role__in=APPROVER_ROLES)
        .exclude(user_id=run.requested_by_id)
        .filter(user__is_active=True)
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    return sorted(set(addresses))


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


def _send_after_commit(subject: str, body: str, recipients: Iterable[str]) -> None:
    recipients = list(recipients)

    def send() -> None:
        # One mail per person: no one learns the others' addresses.
        for address in recipients:
            try:
                send_mail(subject, body, None, [address])
            except Exception as error:  # a mail server's trouble must not fail the run's commit
                logger.warning("could not send the mail %r to %s: %s", subject, address, error)

    transaction.on_commit(send)
