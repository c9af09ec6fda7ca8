"""Setting up, checking and removing second factors: authenticator apps (TOTP), recovery codes,
and the check a person makes at login and before an approval (passkeys: passkeys.py).

Every change a person makes is audited with who (the secret never is); every refused check is
audited too, with why (a replayed code or another person's passkey is an attack).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext as _
from django_otp.oath import hotp
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from dashboard.audit.trail import Actor, record_audit_event
from dashboard.mfa.models import Passkey
from dashboard.mfa.selectors import USED_RECOVERY_CODE_PREFIX, has_second_factor
from dashboard.models import Membership, Role, Tenant

RECOVERY_CODE_COUNT = 10
# No 0/o, 1/l/i: a code copied from paper is read back right.
RECOVERY_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
RECOVERY_CODE_LENGTH = 10
NAME_MAX_CHARS = 64
# Where a check happens: at login, or before an approval (a step-up).
LOGIN, STEP_UP = "login", "step_up"


class SecondFactorRefused(ValidationError):
    """A check that failed: `code` says why (the API-style code), `attack` whether it is one."""

    def __init__(self, message: str, *, code: str, attack: bool = False) -> None:
        self.attack = attack
        super().__init__(message, code=code)


@dataclass(frozen=True)
class Proved:
    """A check that passed: which kind of factor, and which device."""

    kind: str  # "authenticator_app", "recovery_code" or "passkey"
    device_name: str
    recovery_codes_left: int | None = None


# -- authenticator apps -----------------------------------------------------------------------


def totp_setup_start(*, user: AbstractBaseUser) -> TOTPDevice:
    """A new, unconfirmed authenticator app for the person (an earlier unfinished setup is
    dropped): its secret is shown once, as a QR code and as text, until it is confirmed."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        return TOTPDevice.objects.create(user=user, name=_("Authenticator app"), confirmed=False)


def totp_setup_pending(*, user: AbstractBaseUser, device_id: int | None) -> TOTPDevice | None:
    """The person's unconfirmed authenticator app of this id, None when there is none."""
    if device_id is None:
        return None
    return TOTPDevice.objects.filter(user=user, pk=device_id, confirmed=False).first()


def totp_qr_data_uri(device: TOTPDevice) -> str:
    """The app's otpauth:// address as an SVG QR code in a data: URI (the page's CSP allows
    data: images; nothing is fetched from elsewhere)."""
    import segno

    return segno.make(device.config_url, error="m").svg_data_uri(scale=5, border=2)


def totp_secret_text(device: TOTPDevice) -> str:
    """The secret in base32, grouped by four, for typing into an app by hand."""
    from base64 import b32encode

    text = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(text[index : index + 4] for index in range(0, len(text), 4))


def totp_setup_confirm(
    *, actor: Actor, user: AbstractBaseUser, device: TOTPDevice, code: str, name: str = ""
) -> TOTPDevice:
    """Confirm a new authenticator app with a code it shows: from then on it is a factor.
    Audited as mfa.totp_added. A wrong code changes nothing (the setup stays open)."""
    name = (name or "").strip()[:NAME_MAX_CHARS] or _("Authenticator app")
    text = _normalised(code)
    if not (text.isdigit() and len(text) == device.digits):
        raise SecondFactorRefused(
            _("Enter the 6-digit code your app shows for TriggerDesk."), code="invalid"
        )
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().get(pk=device.pk, user=user)
        if device.confirmed or not device.verify_token(text):
            verified = False
        else:
            device.confirmed = True
            device.name = name
            device.save(update_fields=["confirmed", "name"])
            record_audit_event(
                actor=actor,
                action="mfa.totp_added",
                object_type="user",
                object_id=user.pk,
                summary={"name": name},
            )
            verified = True
    if not verified:
        raise SecondFactorRefused(
            _(
                "This code is not right. Check that your phone's clock is correct and enter "
                "the code your app shows now."
            ),
            code="wrong_code",
        )
    return device


# -- recovery codes ---------------------------------------------------------------------------


def recovery_codes_generate(*, actor: Actor, user: AbstractBaseUser) -> list[str]:
    """New recovery codes for the person, replacing any earlier ones (used or not). Returned
    once, to be shown once; each works one time instead of an app or a passkey. Audited as
    mfa.recovery_codes_generated (the count, never the codes)."""
    codes = [
        "".join(secrets.choice(RECOVERY_CODE_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
        for _ in range(RECOVERY_CODE_COUNT)
    ]
    with transaction.atomic():
        device = StaticDevice.objects.filter(user=user).first()
        replaced = device is not None
        if device is None:
            device = StaticDevice.objects.create(user=user, name="Recovery codes", confirmed=True)
        device.token_set.all().delete()
        StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
        record_audit_event(
            actor=actor,
            action="mfa.recovery_codes_generated",
            object_type="user",
            object_id=user.pk,
            summary={"count": len(codes), "replaced_earlier_codes": replaced},
        )
    return [shown_recovery_code(code) for code in codes]


def shown_recovery_code(code: str) -> str:
    """A recovery code as shown: two groups of five."""
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


# -- removing a factor ------------------------------------------------------------------------


def factor_remove(*, actor: Actor, user: AbstractBaseUser, kind: str, device_id: int) -> str:
    """Remove one of the person's own authenticator apps or passkeys (the caller has checked a
    factor within the last minutes). Removing the last one also removes the recovery codes.
    Returns the removed factor's name. Audited as mfa.factor_removed."""
    model = {"authenticator_app": TOTPDevice, "passkey": Passkey}.get(kind)
    if model is None:
        raise ValidationError(_("Unknown kind of factor."), code="invalid")
    with transaction.atomic():
        device = model.objects.select_for_update().filter(user=user, pk=device_id).first()
        if device is None:
            raise ValidationError(
                _("You have no such factor; nothing was removed."), code="not_found"
            )
        name = device.name
        device.delete()
        last = not has_second_factor(user_id=user.pk)
        if last:
            StaticDevice.objects.filter(user=user).delete()
        record_audit_event(
            actor=actor,
            action="mfa.factor_removed",
            object_type="user",
            object_id=user.pk,
            summary={"kind": kind, "name": name, "no_factor_left": last},
        )
    return name


def second_factor_reset(*, actor: Actor, username: str, reason: str) -> int:
    """Remove every factor of a person who lost theirs (apps, passkeys, recovery codes), so
    they can log in with their password and set up new ones (a tenant that requires one sends
    them to). Only a superuser, or an admin of a tenant the person belongs to, may; a reason is
    required. Returns how many factors were removed. Audited as mfa.reset (who, whose, why)."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(_("Say why the second factor is reset."), code="required")
    person = get_user_model().objects.filter(username=username).first()
    if person is None:
        raise ValidationError(_("No user named %(name)s.") % {"name": username}, code="not_found")
    acting = actor.user
    allowed = acting is not None and (
        acting.is_superuser
        or Membership.objects.filter(
            user=acting,
            role=Role.ADMIN,
            tenant__in=Membership.objects.filter(user=person).values("tenant"),
        ).exists()
    )
    if not allowed:
        raise PermissionDenied(
            _(
                "Only a superuser, or an admin of a tenant %(name)s belongs to, may reset their "
                "second factor."
            )
            % {"name": username}
        )
    with transaction.atomic():
        removed = (
            TOTPDevice.objects.filter(user=person, confirmed=True).count()
            + Passkey.objects.filter(user=person).count()
        )
        TOTPDevice.objects.filter(user=person).delete()
        Passkey.objects.filter(user=person).delete()
        StaticDevice.objects.filter(user=person).delete()
        record_audit_event(
            actor=actor,
            action="mfa.reset",
            object_type="user",
            object_id=person.pk,
            summary={"user": person.get_username(), "factors_removed": removed, "reason": reason},
        )
    return removed


# -- checking a code --------------------------------------------------------------------------


def _normalised(code: str) -> str:
    return "".join((code or "").split()).replace("-", "").lower()


def code_verify(*, user: AbstractBaseUser, code: str) -> Proved:
    """Check a code from the person's authenticator app, or one of their recovery codes.

    Raises SecondFactorRefused: a wrong code, a code already used (the same time step again:
    django-otp keeps the last step each app was used at, so a code seen over a shoulder or in
    a proxy's log is no good), a used recovery code, or too many wrong codes in a row (each
    device waits 1, 2, 4 ... seconds after a failure). Nothing is granted on a refusal.
    """
    text = _normalised(code)
    if not text:
        raise SecondFactorRefused(
            _("Enter the code from your authenticator app, or a recovery code."), code="required"
        )
    if text.isdigit() and len(text) <= 8:
        outcome, device = _totp_verify(user, text)
        if outcome == "ok":
            return Proved(kind="authenticator_app", device_name=device.name)
    elif text.isalnum() and len(text) == RECOVERY_CODE_LENGTH:
        outcome, left = _recovery_code_verify(user, text)
        if outcome == "ok":
            return Proved(kind="recovery_code", device_name="", recovery_codes_left=left)
    else:
        outcome = "wrong"
    messages = {
        "replayed": (
            _("This code was already used. Wait for your app to show the next code."),
            "replayed_code",
            True,
        ),
        "used_recovery_code": (
            _("This recovery code was already used; each works only once. Use another one."),
            "used_recovery_code",
            True,
        ),
        "throttled": (
            _("Too many wrong codes in a row: wait a minute, then try again."),
            "throttled",
            False,
        ),
        "no_device": (
            _("You have no authenticator app or recovery codes; use your passkey."),
            "no_factor",
            False,
        ),
    }
    message, refusal_code, attack = messages.get(
        outcome,
        (
            _("This code is not right. Enter the code your app shows now, or a recovery code."),
            "wrong_code",
            False,
        ),
    )
    raise SecondFactorRefused(message, code=refusal_code, attack=attack)


def _totp_verify(user: AbstractBaseUser, text: str) -> tuple[str, TOTPDevice | None]:
    # Row-locked: two requests with the same code one after the other, not both at once, so
    # the second sees the first's step and is refused as a replay.
    with transaction.atomic():
        devices = list(
            TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True).order_by("id")
        )
        if not devices:
            return "no_device", None
        outcome = "wrong"
        for device in devices:
            allowed, _info = device.verify_is_allowed()
            if not allowed:
                outcome = "throttled" if outcome == "wrong" else outcome
                continue
            if device.verify_token(text):
                return "ok", device
            if _was_used(device, text):
                outcome = "replayed"
    return outcome, None


def _was_used(device: TOTPDevice, text: str) -> bool:
    """The code is the one of the step the app was last used at (or an earlier step still
    within the tolerance): a replay, not a typo."""
    if device.last_t < 0:
        return False
    return any(
        hotp(device.bin_key, step, device.digits) == int(text)
        for step in range(max(0, device.last_t - device.tolerance), device.last_t + 1)
    )


def _recovery_code_verify(user: AbstractBaseUser, text: str) -> tuple[str, int]:
    with transaction.atomic():
        device = StaticDevice.objects.select_for_update().filter(user=user, confirmed=True).first()
        if device is None:
            return "no_device", 0
        allowed, _info = device.verify_is_allowed()
        if not allowed:
            return "throttled", 0
        token = device.token_set.filter(token=text).first()
        if token is not None:
            # Kept, marked used (not deleted): a second use is told and audited as such.
            token.token = USED_RECOVERY_CODE_PREFIX + text
            token.save(update_fields=["token"])
            device.throttle_reset(commit=False)
            device.set_last_used_timestamp(commit=False)
            device.save()
            left = device.token_set.exclude(token__startswith=USED_RECOVERY_CODE_PREFIX).count()
            return "ok", left
        used = device.token_set.filter(token=USED_RECOVERY_CODE_PREFIX + text).exists()
        device.throttle_increment(commit=True)
    return ("used_recovery_code" if used else "wrong"), 0


# -- the audit of checks ----------------------------------------------------------------------


def check_recorded(
    *,
    actor: Actor,
    where: str,
    proved: Proved | None = None,
    refused: SecondFactorRefused | None = None,
    tenant: Tenant | None = None,
    doing: str = "",
) -> None:
    """Audit one check: mfa.login_check / mfa.step_up when it passed, with the kind of factor;
    mfa.login_check_failed / mfa.step_up_failed when refused, with why and whether it looks
    like an attack. `doing`: what the step-up was for (the approval's page address)."""
    action = "mfa.step_up" if where == STEP_UP else "mfa.login_check"
    summary: dict = {"for": doing} if doing else {}
    if proved is not None:
        summary |= {"factor": proved.kind, "device": proved.device_name}
        if proved.recovery_codes_left is not None:
            summary["recovery_codes_left"] = proved.recovery_codes_left
    else:
        action += "_failed"
        summary |= {"reason": refused.code if refused else "unknown"}
        summary["attack"] = bool(refused and refused.attack)
    with transaction.atomic():
        record_audit_event(
            actor=actor,
            tenant=tenant,
            action=action,
            object_type="user",
            object_id=actor.user.pk if actor.user is not None else "",
            summary=summary,
        )
