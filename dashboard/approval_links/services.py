"""Issue, check and use one-time approval links.

A token is 32 random bytes (url-safe text) shown only in the mail; the table keeps its SHA-256,
so whoever reads the database cannot approve anything. A link decides at most once: its row is
claimed (`used_at`) in the same transaction as the decision and its audit rows, so a second
click, a second tab or a replay finds it used and changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from dashboard.approval_links.models import ApprovalLink
from dashboard.approval_links.subjects import RequestDescription, subject_for
from dashboard.audit.trail import Actor, record_audit_event
from dashboard.clock import utc_now
from dashboard.models import Membership, Permission, Tenant

VIA = "email link"
TOKEN_BYTES = 32
# A token is token_urlsafe(32): 43 characters. Anything else is not one of ours.
TOKEN_LENGTH = 43

# Why a link cannot decide: the code (audited, and the API of the page's tests) and what the
# person is told. Nothing changed in any of these cases.
REFUSALS = {
    "invalid": gettext_lazy("This approval link is not valid."),
    "wrong_recipient": gettext_lazy(
        "This approval link was sent to someone else. Only its recipient can use it."
    ),
    "used": gettext_lazy("This approval link was already used. It works only once."),
    "expired": gettext_lazy("This approval link has expired, like the request's approval time."),
    "decided": gettext_lazy("This request is no longer waiting for approval."),
    "not_approver": gettext_lazy("You are no longer an operator of this tenant."),
}


class ApprovalLinkRefused(Exception):
    """A link that cannot decide: `code` is one of REFUSALS. Nothing was changed."""

    def __init__(self, code: str, message: str = "") -> None:
        self.code = code
        self.message = message or str(REFUSALS[code])
        super().__init__(self.message)


@dataclass
class OpenedLink:
    """A link its recipient opened: the request as the page shows it, and whether (and why
    not) it can still decide."""

    link: ApprovalLink
    request: Any
    description: RequestDescription
    refusal: str  # "" when it can decide, else a REFUSALS code

    @property
    def refusal_message(self) -> str:
        return str(REFUSALS[self.refusal]) if self.refusal else ""


def token_hash(token: str) -> str:
    """The stored form of a token (SHA-256, hex)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def approval_links_issue(
    *,
    tenant: Tenant,
    subject_type: str,
    subject_id: int,
    recipient_ids: Iterable[int],
    expires_at: datetime,
) -> dict[int, str]:
    """Make one link per recipient for a request awaiting approval, in the caller's
    transaction; returns each recipient's token (to put in their mail only, never stored)."""
    now = utc_now()
    tokens: dict[int, str] = {}
    links = []
    for user_id in recipient_ids:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        tokens[user_id] = token
        links.append(
            ApprovalLink(
                tenant=tenant,
                subject_type=subject_type,
                subject_id=subject_id,
                recipient_id=user_id,
                token_hash=token_hash(token),
                created_at=now,
                expires_at=expires_at,
            )
        )
    ApprovalLink.objects.bulk_create(links)
    return tokens


def approval_link_url(token: str) -> str:
    """The absolute address of a link (for mails; SITE_URL, as there is no request)."""
    return f"{settings.SITE_URL}{reverse('approval_link', args=[token])}"


def approval_link_find(*, token: str) -> ApprovalLink | None:
    """The link of `token`, or None for a token that is not one (tampered, truncated, made up).

    The lookup is by the token's hash, so the database never compares the token itself; the
    hashes are compared again in constant time."""
    if not isinstance(token, str) or len(token) != TOKEN_LENGTH:
        return None
    expected = token_hash(token)
    link = ApprovalLink.objects.select_related("tenant").filter(token_hash=expected).first()
    if link is None or not hmac.compare_digest(link.token_hash, expected):
        return None
    return link


def approval_link_open(*, token: str, actor: Actor) -> OpenedLink:
    """The link of `token` opened by `actor`, with the request it decides.

    Raises ApprovalLinkRefused("invalid") for a token that is not a link (audited as
    approval_link.rejected, without the token) and ApprovalLinkRefused("wrong_recipient") for
    someone else's link: neither shows anything of the request. A used or expired link, or a
    decided request, opens with its `refusal` set: the page says so and offers no decision.
    """
    link = approval_link_find(token=token)
    if link is None:
        _audit_refusal(actor=actor, link=None, code="invalid")
        raise ApprovalLinkRefused("invalid")
    if actor.user is None or link.recipient_id != actor.user.pk:
        _audit_refusal(actor=actor, link=link, code="wrong_recipient")
        raise ApprovalLinkRefused("wrong_recipient")
    subject = subject_for(link.subject_type)
    request = subject.get(tenant_id=link.tenant_id, subject_id=link.subject_id) if subject else None
    if subject is None or request is None:
        _audit_refusal(actor=actor, link=link, code="invalid")
        raise ApprovalLinkRefused("invalid")
    description = subject.describe(request)
    return OpenedLink(
        link=link,
        request=request,
        description=description,
        refusal=_refusal(link, description),
    )


def approval_link_decide(
    *,
    token: str,
    actor: Actor,
    approve: bool,
    comment: str = "",
    fingerprint_seen: str = "",
) -> str:
    """Approve or reject the link's request as its recipient, once.

    The decision goes through the request's own service (N of M distinct approvers, never the
    requester, the expiry, the fingerprint the approver saw), in one transaction with the
    link's claim and an `approval_link.used` audit row ("via": "email link"). Returns the
    message for the approver; raises ApprovalLinkRefused (audited as approval_link.rejected),
    or the service's own refusal (RunActionError, ValidationError, PermissionDenied): in every
    refusal nothing changed and the link can still be used if it could before.
    """
    comment = (comment or "").strip()
    if not approve and not comment:
        raise ValidationError(_("Say why you reject it, so the requester knows what to fix."))
    opened = approval_link_open(token=token, actor=actor)
    link = opened.link
    if opened.refusal:
        _audit_refusal(actor=actor, link=link, code=opened.refusal)
        raise ApprovalLinkRefused(opened.refusal)
    membership = Membership.objects.filter(user=actor.user, tenant_id=link.tenant_id).first()
    if membership is None or not membership.can(Permission.APPROVE):
        _audit_refusal(actor=actor, link=link, code="not_approver")
        raise ApprovalLinkRefused("not_approver")
    subject = subject_for(link.subject_type)
    decision = ApprovalLink.Decision.APPROVED if approve else ApprovalLink.Decision.REJECTED
    with transaction.atomic():
        claimed = ApprovalLink.objects.filter(pk=link.pk, used_at__isnull=True).update(
            used_at=utc_now(), decision=decision
        )
        if not claimed:  # another click of this link won the race
            raise ApprovalLinkRefused("used")
        if approve:
            message = subject.approve(
                actor=actor,
                membership=membership,
                request=opened.request,
                fingerprint_seen=fingerprint_seen,
                comment=comment,
            )
        else:
            message = subject.reject(
                actor=actor, membership=membership, request=opened.request, comment=comment
            )
        record_audit_event(
            actor=actor,
            tenant=link.tenant,
            action="approval_link.used",
            object_type=link.subject_type,
            object_id=link.subject_id,
            summary={
                "link": link.pk,
                "decision": decision,
                "comment": comment,
                "via": VIA,
            },
        )
    return message


def _refusal(link: ApprovalLink, description: RequestDescription) -> str:
    if link.used_at is not None:
        return "used"
    if not description.awaiting:
        return "decided"
    if link.expires_at <= utc_now():
        return "expired"
    return ""


def _audit_refusal(*, actor: Actor, link: ApprovalLink | None, code: str) -> None:
    """Record a refused link (never its token): who tried, which link if it is one, and why."""
    record_audit_event(
        actor=actor,
        tenant=link.tenant if link is not None else None,
        action="approval_link.rejected",
        object_type=link.subject_type if link is not None else "approval_link",
        object_id=link.subject_id if link is not None else "",
        summary={
            "reason": code,
            "link": link.pk if link is not None else None,
            "via": VIA,
        },
    )
