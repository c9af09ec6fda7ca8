"""Writes and checks of API tokens: create (the secret shown once), revoke, authenticate; and
the clean-up of old Idempotency-Key records.

A token acts as its person in its tenant, with the role the person has there at the moment of
each request: a changed role, a removed membership or a deactivated account takes effect at the
next request, like revocation and expiry.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from dashboard.api.models import TOKEN_PREFIX, ApiToken, IdempotencyRecord
from dashboard.audit.trail import Actor, record_audit_event, save_with_audit
from dashboard.clock import utc_now
from dashboard.models import Membership, Tenant

# 32 random bytes: far beyond guessing, so a plain SHA-256 (no salt, no slow hash) is enough and
# lets a request find its token by one indexed lookup.
SECRET_BYTES = 32
SHOWN_PREFIX_CHARS = 12
# Ids per DELETE of the idempotency clean-up: each statement holds its row locks briefly.
IDEMPOTENCY_DELETE_BATCH = 5000


class TokenRefused(Exception):
    """The presented token cannot be used; `code` says why (for the problem+json answer)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class TokenUse:
    """An accepted token and the membership it acts with."""

    token: ApiToken
    membership: Membership

    def actor(self, ip_address: str | None) -> Actor:
        """The actor the services record: the person, labelled with the token's name."""
        label = f"{self.membership.user.get_username()} via API token “{self.token.name}”"
        return Actor(user=self.membership.user, ip_address=ip_address, label=label[:150])


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def api_token_create(
    *,
    actor: Actor,
    user: AbstractBaseUser,
    tenant: Tenant,
    name: str,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for `user` in `tenant`; returns it and its secret, which is never stored.

    The secret starts with `tdk_` so secret scanners can recognise a leaked one.
    """
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": _("Give the token a name (the pipeline that will use it).")})
    if len(name) > 80:
        raise ValidationError({"name": _("At most 80 characters.")})
    now = utc_now()
    if expires_at is not None and expires_at <= now:
        raise ValidationError({"expires_at": _("The expiry must be in the future.")})
    if not Membership.objects.filter(user=user, tenant=tenant).exists():
        raise ValidationError(
            _("%(username)s is not a member of %(tenant)s.")
            % {"username": user.get_username(), "tenant": tenant.name}
        )
    secret = TOKEN_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    token = ApiToken(
        user=user,
        tenant=tenant,
        name=name,
        prefix=secret[:SHOWN_PREFIX_CHARS],
        token_hash=token_hash(secret),
        created_at=now,
        expires_at=expires_at,
    )
    try:
        save_with_audit(
            token,
            actor=actor,
            tenant=tenant,
            action="api_token.created",
            object_type="api_token",
            summary={
                "name": name,
                "prefix": token.prefix,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
    except IntegrityError:
        raise ValidationError({"name": _("You already have a token with this name.")}) from None
    return token, secret


def api_token_revoke(*, actor: Actor, token: ApiToken) -> ApiToken:
    """Revoke a token; the next request made with it is refused. Revoking twice changes nothing."""
    with transaction.atomic():
        changed = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=utc_now()
        )
        if changed:
            record_audit_event(
                actor=actor,
                tenant=token.tenant,
                action="api_token.revoked",
                object_type="api_token",
                object_id=token.pk,
                summary={"name": token.name, "prefix": token.prefix},
            )
    token.refresh_from_db()
    return token


def api_token_authenticate(*, secret: str, tenant_slug: str) -> TokenUse:
    """The token for `secret`, if it may act in the tenant `tenant_slug` now.

    Raises TokenRefused (unknown, revoked, expired, person no longer a member or inactive) and
    DoesNotExist-like TokenRefused("tenant_not_found") when the address names another tenant.
    Records the time of use.
    """
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        raise TokenRefused("invalid_token", _("The token is not a TriggerDesk API token."))
    token = (
        ApiToken.objects.select_related("tenant", "user")
        .filter(token_hash=token_hash(secret))
        .first()
    )
    if token is None:
        raise TokenRefused("invalid_token", _("The token is unknown."))
    now = utc_now()
    if token.revoked_at is not None:
        raise TokenRefused("token_revoked", _("The token was revoked."))
    if token.expires_at is not None and token.expires_at <= now:
        raise TokenRefused("token_expired", _("The token has expired."))
    if not token.user.is_active:
        raise TokenRefused("invalid_token", _("The token's account is deactivated."))
    if token.tenant.slug != tenant_slug:
        # Like the pages: another tenant is not there, for this token.
        raise TokenRefused("tenant_not_found", _("No such tenant for this token."))
    membership = (
        Membership.objects.select_related("user", "tenant")
        .filter(user=token.user, tenant=token.tenant)
        .first()
    )
    if membership is None:
        raise TokenRefused("invalid_token", _("The token's person is no longer a member."))
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return TokenUse(token=token, membership=membership)


def idempotency_records_expire(*, batch_size: int = IDEMPOTENCY_DELETE_BATCH) -> int:
    """Delete the Idempotency-Key records older than API_IDEMPOTENCY_RETENTION_HOURS, of every
    tenant; return how many.

    `batch_size` ids at a time, oldest first, each DELETE its own statement (call it outside a
    transaction, as the beat task does), so no lock is held for long and requests go on
    meanwhile. Forgetting a record never allows a second run: the run (trigger group, launch)
    keeps the key for good, and a later request with it answers with that object
    (dashboard/api/endpoints/common.py, create_once).
    """
    hours = settings.API_IDEMPOTENCY_RETENTION_HOURS
    if hours < 1:
        # 0 or less would forget every key at once, retries of requests made a second ago too.
        raise ImproperlyConfigured(
            f"API_IDEMPOTENCY_RETENTION_HOURS must be at least 1 (it is {hours})."
        )
    cutoff = utc_now() - timedelta(hours=hours)
    expired = IdempotencyRecord.objects.filter(created_at__lt=cutoff).order_by("created_at")
    deleted = 0
    while True:
        ids = list(expired.values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        deleted += IdempotencyRecord.objects.filter(pk__in=ids).delete()[0]
