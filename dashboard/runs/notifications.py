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
from collections.abc import Callable, Iterable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext
from django.utils.translation import gettext as _

from dashboard.approval_links.mail import link_text
from dashboard.approval_links.services import approval_links_issue
from dashboard.chat_webhooks.services import ChatNews, chat_announce
from dashboard.clock import utc_now
from dashboard.models import ROLE_PERMISSIONS, Membership, Permission
from dashboard.preferences.models import PersonalPreference
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

    def compose() -> tuple[str, str]:
        expires = (
            gettext("It expires at %(when)s UTC if nobody approves it.")
            % {"when": format(run.approval_expires_at, "%Y-%m-%d %H:%M")}
            + "\n"
            if run.approval_expires_at
            else ""
        )
        subject = gettext("Approval needed: run #%(run_pk)s, %(name)s") % {
            "run_pk": run.pk,
            "name": run.name,
        }
        body = (
            gettext("%(who)s requested run #%(run_pk)s in %(tenant)s:")
            % {
                "who": run.requested_by_label or gettext("Someone"),
                "run_pk": run.pk,
                "tenant": run.tenant.name,
            }
            + "\n"
            + _what(run)
            + "  "
            + gettext("on %(connection)s")
            % {"connection": run.connection_name or run.connection.name}
            + "\n\n"
            + gettext("It needs a second person's approval before anything is sent.")
            + "\n"
            + expires
            + "\n"
            + gettext("Review it: %(url)s") % {"url": _run_url(run)}
            + "\n"
        )
        return subject, body

    # The links are made in the run's transaction: a rolled-back request leaves none behind.
    tokens = approval_links_issue(
        tenant=run.tenant,
        subject_type="run",
        subject_id=run.pk,
        recipient_ids=[user_id for user_id, _address in recipients],
        expires_at=run.approval_expires_at or utc_now(),
    )
    _send_after_commit(compose, recipients, link=lambda user_id: link_text(tokens[user_id]))


def request_decided(*, run: Run, approved: bool, decided_by: str, comment: str = "") -> None:
    """Tell the requester (and the tenant's chat) that `run` was approved (and is being sent)
    or rejected."""
    _chat(run, "approved" if approved else "rejected", who=decided_by, comment=comment)
    recipients = _requester_recipients(run)
    if not recipients:
        return

    def compose() -> tuple[str, str]:
        names = {"run_pk": run.pk, "name": run.name, "who": decided_by, "tenant": run.tenant.name}
        if approved:
            subject = gettext("Run #%(run_pk)s approved: %(name)s") % names
            headline = gettext("%(who)s approved your request #%(run_pk)s in %(tenant)s:") % names
            what_now = gettext("It is queued and is being sent to the vendor now.")
        else:
            subject = gettext("Run #%(run_pk)s rejected: %(name)s") % names
            headline = gettext("%(who)s rejected your request #%(run_pk)s in %(tenant)s:") % names
            what_now = gettext("Nothing was sent. Request it again if it is still needed.")
        said = "\n" + gettext("Their comment: %(comment)s") % {"comment": comment} + "\n"
        body = (
            f"{headline}\n{_what(run)}{said if comment else ''}\n{what_now}\n\n"
            + gettext("See it: %(url)s") % {"url": _run_url(run)}
            + "\n"
        )
        return subject, body

    _send_after_commit(compose, recipients)


def request_expired(*, run: Run) -> None:
    """Tell the requester (and the tenant's chat) that nobody approved `run` in time."""
    _chat(run, "expired")
    recipients = _requester_recipients(run)
    if not recipients:
        return

    def compose() -> tuple[str, str]:
        names = {"run_pk": run.pk, "name": run.name, "tenant": run.tenant.name}
        subject = gettext("Run #%(run_pk)s expired unapproved: %(name)s") % names
        body = (
            gettext("Nobody approved your request #%(run_pk)s in %(tenant)s in time:") % names
            + "\n"
            + _what(run)
            + "\n"
            + gettext("Nothing was sent. Request it again if it is still needed.")
            + "\n\n"
            + gettext("See it: %(url)s") % {"url": _run_url(run)}
            + "\n"
        )
        return subject, body

    _send_after_commit(compose, recipients)


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


def _requester_recipients(run: Run) -> list[tuple[int, str]]:
    if run.requested_by_id is None:
        return []
    user = get_user_model().objects.filter(pk=run.requested_by_id, is_active=True).first()
    email = getattr(user, "email", "") if user is not None else ""
    return [(user.pk, email)] if email else []


def recipient_languages(user_ids: Iterable[int], *, fallback: str) -> dict[int, str]:
    """The language each person reads their mail in: the one they chose on their Preferences
    page, else `fallback` (the language of the request that caused the mail; the deployment's,
    LANGUAGE_CODE, in a worker). One query."""
    user_ids = set(user_ids)
    chosen = dict(
        PersonalPreference.objects.filter(user_id__in=user_ids)
        .exclude(language="")
        .values_list("user_id", "language")
    )
    return {user_id: chosen.get(user_id) or fallback for user_id in user_ids}


def _what(run: Run) -> str:
    """The run's title as it was requested, then its parameters' ids (each on its own line)."""
    return f"  {run.name}\n  ({run_description(run)})\n"


def _run_url(run: Run) -> str:
    path = reverse("run_detail", args=[run.tenant.slug, run.pk])
    return f"{settings.SITE_URL}{path}"


def _send_after_commit(
    compose: Callable[[], tuple[str, str]],
    recipients: Iterable[tuple[int, str]],
    *,
    link: Callable[[int], str] | None = None,
) -> None:
    """After the commit, send each recipient (user id, address) the mail `compose` writes, in
    their own language, with their own `link` text (an approver's one-time link) at its end."""
    recipients = list(recipients)
    fallback = translation.get_language() or settings.LANGUAGE_CODE

    def send() -> None:
        # One mail per person: no one learns the others' addresses (nor their links), and each
        # reads it in their own language, whatever the request's or the worker's.
        languages = recipient_languages(
            (user_id for user_id, _address in recipients), fallback=fallback
        )
        for user_id, address in recipients:
            with translation.override(languages[user_id]):
                subject, body = compose()
                if link is not None:
                    body += link(user_id)
            try:
                send_mail(subject, body, None, [address])
            except Exception as error:  # a mail server's trouble must not fail the run's commit
                logger.warning("could not send the mail %r to %s: %s", subject, address, error)

    transaction.on_commit(send)
