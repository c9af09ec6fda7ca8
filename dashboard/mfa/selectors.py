"""Reads of a person's second factors."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth.base_user import AbstractBaseUser
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from dashboard.mfa.models import Passkey

# A recovery code once used is kept with this prefix (never part of a code): a second use is
# told apart from a typo.
USED_RECOVERY_CODE_PREFIX = "!"


@dataclass
class Factors:
    """A person's confirmed factors and how many unused recovery codes they have left."""

    authenticator_apps: list[TOTPDevice] = field(default_factory=list)
    passkeys: list[Passkey] = field(default_factory=list)
    recovery_codes_left: int = 0
    has_recovery_codes: bool = False

    @property
    def any(self) -> bool:
        """A factor that proves who one is on its own (recovery codes only back these up)."""
        return bool(self.authenticator_apps or self.passkeys)

    @property
    def count(self) -> int:
        return len(self.authenticator_apps) + len(self.passkeys)


def factors_of(*, user: AbstractBaseUser) -> Factors:
    """The person's confirmed authenticator apps and passkeys, and their recovery codes."""
    recovery = StaticDevice.objects.filter(user=user, confirmed=True).first()
    return Factors(
        authenticator_apps=list(
            TOTPDevice.objects.filter(user=user, confirmed=True).order_by("id")
        ),
        passkeys=list(Passkey.objects.filter(user=user, confirmed=True).order_by("id")),
        has_recovery_codes=recovery is not None,
        recovery_codes_left=(
            recovery.token_set.exclude(token__startswith=USED_RECOVERY_CODE_PREFIX).count()
            if recovery is not None
            else 0
        ),
    )


def has_second_factor(*, user_id: int) -> bool:
    """Whether the person has a confirmed authenticator app or passkey (two small queries)."""
    return (
        TOTPDevice.objects.filter(user_id=user_id, confirmed=True).exists()
        or Passkey.objects.filter(user_id=user_id, confirmed=True).exists()
    )


def users_with_second_factor(*, user_ids: list[int]) -> set[int]:
    """Which of these people have a confirmed app or passkey (the members page; two queries)."""
    with_app = TOTPDevice.objects.filter(user_id__in=user_ids, confirmed=True)
    with_passkey = Passkey.objects.filter(user_id__in=user_ids, confirmed=True)
    return set(with_app.values_list("user_id", flat=True)) | set(
        with_passkey.values_list("user_id", flat=True)
    )
