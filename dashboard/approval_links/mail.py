"""The approval-needed mail with each approver's own link, for any kind of request.

The run engine has its own (dashboard/runs/notifications.py); a feature app's request (an
Altcraft launch) calls approvers_notify. The links are made in the caller's transaction and the
mails leave after it commits: a rolled-back request tells nobody and leaves no link behind.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.core.mail import send_mail
from django.db import transaction
from django.utils.translation import gettext as _

from dashboard.approval_links.services import approval_link_url, approval_links_issue
from dashboard.models import ROLE_PERMISSIONS, Membership, Permission, Tenant

logger = logging.getLogger(__name__)

APPROVER_ROLES = [role for role, perms in ROLE_PERMISSIONS.items() if Permission.APPROVE in perms]


def approvers_notify(
    *,
    tenant: Tenant,
    subject_type: str,
    subject_id: int,
    requester_id: int | None,
    expires_at: datetime,
    subject: str,
    body: str,
) -> int:
    """Mail `body` to each active approver of `tenant` with an address (never the requester),
    each followed by their own one-time link; returns how many mails will be sent."""
    members = sorted(
        set(
            Membership.objects.filter(tenant=tenant, role__in=APPROVER_ROLES)
            .exclude(user_id=requester_id)
            .filter(user__is_active=True)
            .exclude(user__email="")
            .values_list("user_id", "user__email")
        ),
        key=lambda member: (member[1], member[0]),
    )
    if not members:
        return 0
    tokens = approval_links_issue(
        tenant=tenant,
        subject_type=subject_type,
        subject_id=subject_id,
        recipient_ids=[user_id for user_id, _address in members],
        expires_at=expires_at,
    )
    bodies = {address: body + link_text(tokens[user_id]) for user_id, address in members}

    def send() -> None:
        # One mail per person: no one learns the others' addresses (nor their links).
        for address, text in bodies.items():
            try:
                send_mail(subject, text, None, [address])
            except Exception as error:  # a mail server's trouble must not fail the request
                logger.warning("could not send the mail %r to %s: %s", subject, address, error)

    transaction.on_commit(send)
    return len(bodies)


def link_text(token: str) -> str:
    """The mail's paragraph with one approver's link."""
    return "\n" + _(
        "Or decide from this link, made for you only (sign-in required; it works once, "
        "until the request expires):\n%(url)s\n"
    ) % {"url": approval_link_url(token)}
