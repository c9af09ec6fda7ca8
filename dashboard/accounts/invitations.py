"""Inviting people by email, and people managing their own password. Every step is audited.

An admin invites an email address with a role. A new address gets an account with no usable
password, the membership, and an email with a one-time link to set a password. An address that
already has an account gets the membership and an email saying so (plus a set-password link if
it never set one). The link is Django's password-reset token under its own salt: it dies when
the password is set (the token hashes the password), when the address is invited again (only
the newest link works) and after INVITE_VALID_HOURS.

Links start with SITE_URL, never with the Host header of the admin's request (which anyone on
the way can set, to have the token sent to a host of theirs).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import NamedTuple

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.crypto import constant_time_compare
from django.utils.encoding import force_bytes
from django.utils.http import base36_to_int, urlsafe_base64_encode
from django.utils.translation import gettext
from django.utils.translation import gettext as _

from dashboard.audit.trail import Actor, record_audit_event
from dashboard.models import Membership, Role, Tenant
from dashboard.preferences.selectors import language_for_user
from dashboard.tenancy.permissions import require_tenant_admin
from dashboard.tenancy.services import membership_add, user_create

logger = logging.getLogger(__name__)
User = get_user_model()


class InviteTokenGenerator(PasswordResetTokenGenerator):
    """Password-reset tokens under their own salt (a reset token is no invitation, and the other
    way round), valid for INVITE_VALID_HOURS instead of PASSWORD_RESET_TIMEOUT."""

    key_salt = "triggerdesk.invitations.InviteTokenGenerator"

    def check_token(self, user: AbstractBaseUser | None, token: str | None) -> bool:
        if not (user and token):
            return False
        try:
            timestamp = base36_to_int(token.split("-")[0])
        except ValueError:
            return False
        if len(token.split("-")) != 2:
            return False
        for secret in [self.secret, *self.secret_fallbacks]:
            if constant_time_compare(
                self._make_token_with_timestamp(user, timestamp, secret), token
            ):
                break
        else:
            return False
        age_seconds = self._num_seconds(self._now()) - timestamp
        return 0 <= age_seconds <= invite_valid_for().total_seconds()


invite_token_generator = InviteTokenGenerator()


def invite_valid_for() -> timedelta:
    """How long an invitation link works (INVITE_VALID_HOURS)."""
    return timedelta(hours=getattr(settings, "INVITE_VALID_HOURS", 72))


class InviteResult(NamedTuple):
    user: AbstractBaseUser
    membership: Membership
    new_account: bool
    email_sent: bool
    email_error: str


def invite_link(*, user: AbstractBaseUser) -> str:
    """The one-time set-password link for `user`, under SITE_URL."""
    path = reverse(
        "invite_accept",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": invite_token_generator.make_token(user),
        },
    )
    return settings.SITE_URL + path


def _never_joined(user: AbstractBaseUser) -> bool:
    return not user.has_usable_password() and user.last_login is None


def member_invite(
    *, actor: Actor, tenant: Tenant, email: str, role: str, username: str = ""
) -> InviteResult:
    """Invite `email` to `tenant` with `role` (admins only); see the module docstring.

    Inviting someone who was invited but never set a password sends a fresh link and revokes the
    earlier ones. The email goes
    out after the changes are committed; a failure to send is reported, not raised (the admin
    can invite again to resend).
    """
    require_tenant_admin(
        actor, tenant, refusal=_("Only an admin of this tenant can invite people.")
    )
    if not settings.SSO_LOCAL_PASSWORDS:
        raise ValidationError(
            gettext(
                "Local passwords are switched off, so nobody can be invited to set one. People "
                "join through single sign-on: map their identity-provider group to a role on the "
                "Single sign-on page."
            ),
            code="passwords_off",
        )
    email = User.objects.normalize_email((email or "").strip())
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError({"email": "Enter a valid email address."}) from None
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}."})
    matches = list(User.objects.filter(email__iexact=email)[:2])
    if len(matches) > 1:
        raise ValidationError(
            {"email": "Several accounts use this address; add the member by user name instead."}
        )
    with transaction.atomic():
        if matches:
            user, new_account = matches[0], False
            membership = Membership.objects.filter(user=user, tenant=tenant).first()
            if membership is not None and not _never_joined(user):
                raise ValidationError(
                    {"email": f"{user.get_username()} is already a member of {tenant.name}."}
                )
            if membership is None:
                membership = membership_add(actor=actor, tenant=tenant, user=user, role=role)
        else:
            username = (username or email).strip()
            if User.objects.filter(username__iexact=username).exists():
                raise ValidationError(
                    {"username": f"The user name {username!r} is taken; choose another."}
                )
            try:
                user = user_create(username=username, password=None, email=email, actor=actor)
            except ValidationError as error:
                raise ValidationError(
                    {"username": "; ".join(error.messages)}
                    if hasattr(error, "error_dict")
                    else error.messages
                ) from None
            new_account = True
            membership = membership_add(actor=actor, tenant=tenant, user=user, role=role)
        needs_link = _never_joined(user)
        if needs_link and not new_account:
            # Only the newest link may work. A link's token hashes the password field, and a
            # new unusable password (random each time) changes it: every earlier link dies.
            user.set_unusable_password()
            user.save(update_fields=["password"])
        record_audit_event(
            actor=actor,
            tenant=tenant,
            action="member.invited",
            object_type="membership",
            object_id=membership.pk,
            summary={
                "user": user.get_username(),
                "email": email,
                "role": membership.role,
                "new_account": new_account,
                "set_password_link": needs_link,
            },
        )
    email_sent, email_error = _send_invitation(
        user=user,
        tenant=tenant,
        membership=membership,
        inviter=actor.display,
        link=invite_link(user=user) if needs_link else "",
    )
    return InviteResult(user, membership, new_account, email_sent, email_error)


def _send_invitation(
    *,
    user: AbstractBaseUser,
    tenant: Tenant,
    membership: Membership,
    inviter: str,
    link: str,
) -> tuple[bool, str]:
    # The invitee's own language if they chose one already, else the inviting admin's.
    with translation.override(language_for_user(user, fallback=translation.get_language())):
        lines = [
            _("%(inviter)s gave you access to %(tenant)s on TriggerDesk as %(role)s.")
            % {
                "inviter": inviter,
                "tenant": tenant.name,
                "role": membership.get_role_display().lower(),
            },
            "",
            _("Your user name: %(username)s") % {"username": user.get_username()},
        ]
        if link:
            expires = timezone.now() + invite_valid_for()
            lines += [
                "",
                _(
                    "Set your password with this link (it works once, until %(expires)s UTC; "
                    "it replaces any earlier invitation link):"
                )
                % {"expires": f"{expires:%Y-%m-%d %H:%M}"},
                link,
            ]
        else:
            lines += [
                "",
                _("Log in as usual: %(url)s") % {"url": f"{settings.SITE_URL}{reverse('login')}"},
            ]
        lines += [
            "",
            _("If you did not expect this, ignore this email and tell your team's admin."),
        ]
        subject = _("You have access to %(tenant)s on TriggerDesk") % {"tenant": tenant.name}
    try:
        send_mail(
            subject=subject,
            message="\n".join(lines),
            from_email=None,
            recipient_list=[user.email],
        )
    except Exception as error:  # any transport failure: the invitation itself is saved
        logger.warning("invitation email to user %s not sent: %s", user.pk, type(error).__name__)
        return False, f"{type(error).__name__}"
    return True, ""


def invite_accepted(*, user: AbstractBaseUser, ip_address: str | None) -> None:
    """Audit that an invited person set their password, in every tenant they belong to."""
    actor = Actor(user=user, ip_address=ip_address)
    with transaction.atomic():
        record_audit_event(
            actor=actor, action="user.password_set", object_type="user", object_id=user.pk
        )
        for membership in Membership.objects.filter(user=user).select_related("tenant"):
            record_audit_event(
                actor=actor,
                tenant=membership.tenant,
                action="member.joined",
                object_type="membership",
                object_id=membership.pk,
                summary={"user": user.get_username(), "role": membership.role},
            )


def password_changed(*, user: AbstractBaseUser, ip_address: str | None) -> None:
    """Audit that a user changed their own password (never the password itself)."""
    record_audit_event(
        actor=Actor(user=user, ip_address=ip_address),
        action="user.password_changed",
        object_type="user",
        object_id=user.pk,
    )
