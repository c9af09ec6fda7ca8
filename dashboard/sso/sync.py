"""Applying the group mapping without a login: `sso_sync` asks the IdP for each person's current
claims with their stored refresh token (token endpoint, then userinfo) and applies them. When the
IdP refuses the refresh token (the person was disabled or their grant revoked), their SSO roles
are removed at once."""

from __future__ import annotations

from dataclasses import dataclass

import requests
from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from dashboard.audit.trail import Actor, record_audit_event
from dashboard.clock import utc_now
from dashboard.sso import configuration, services
from dashboard.sso.models import SsoIdentity
from dashboard.tenancy.crypto import CredentialDecryptionError, decrypt_secret, encrypt_secret


@dataclass
class SyncOutcome:
    """What the sync did for one person: "applied", "refused" (roles removed), "skipped" (no
    refresh token: applies at their next login) or "failed" (IdP unreachable: nothing changed)."""

    username: str
    outcome: str
    detail: str
    applied: services.RolesApplied | None = None


def _post_refresh(discovered: configuration.Discovery, refresh_token: str) -> requests.Response:
    return requests.post(
        discovered.token_endpoint,
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": settings.SSO_OIDC_CLIENT_ID,
            "client_secret": settings.SSO_OIDC_CLIENT_SECRET,
        },
        timeout=settings.SSO_HTTP_TIMEOUT_SECONDS,
    )


def sync_identity(*, identity: SsoIdentity, actor: Actor) -> SyncOutcome:
    """Fetch one person's fresh claims with their refresh token and apply the mapping; remove
    their SSO roles when the IdP refuses the token. Audited (sso.synced / sso.sync_refused)."""
    user = identity.user
    username = user.get_username()
    if not identity.encrypted_refresh_token:
        return SyncOutcome(
            username, "skipped", _("no refresh token; applies at their next sign-in")
        )
    try:
        refresh_token = decrypt_secret(identity.encrypted_refresh_token)
    except CredentialDecryptionError:
        return SyncOutcome(username, "failed", _("the stored refresh token cannot be decrypted"))
    try:
        discovered = configuration.discovery()
        response = _post_refresh(discovered, refresh_token)
    except (configuration.ProviderUnavailable, requests.RequestException):
        return SyncOutcome(username, "failed", _("the identity provider cannot be reached"))
    if response.status_code in (400, 401):
        error = _error_code(response)
        return _refused(identity=identity, actor=actor, reason=error)
    if response.status_code != 200:
        return SyncOutcome(
            username,
            "failed",
            _("the identity provider answered %(status)d") % {"status": response.status_code},
        )
    try:
        tokens = response.json()
        userinfo = requests.get(
            discovered.userinfo_endpoint,
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
            timeout=settings.SSO_HTTP_TIMEOUT_SECONDS,
        )
    except (ValueError, KeyError, TypeError, requests.RequestException):
        return SyncOutcome(username, "failed", _("the identity provider's answer was not usable"))
    if userinfo.status_code in (401, 403):
        return _refused(identity=identity, actor=actor, reason="userinfo_refused")
    try:
        userinfo.raise_for_status()
        claims = userinfo.json()
    except (ValueError, requests.RequestException):
        return SyncOutcome(username, "failed", _("the identity provider's userinfo was not usable"))
    if not isinstance(claims, dict) or str(claims.get("sub")) != identity.subject:
        return _refused(identity=identity, actor=actor, reason="subject_mismatch")
    if not services.email_is_verified(claims):
        return _refused(identity=identity, actor=actor, reason="email_not_verified")
    groups = services.groups_from_claims(claims, settings.SSO_GROUPS_CLAIM)
    with transaction.atomic():
        identity.groups = groups
        identity.last_synced_at = utc_now()
        if tokens.get("refresh_token"):
            # Rotating IdPs hand out a new refresh token with each use.
            identity.encrypted_refresh_token = encrypt_secret(str(tokens["refresh_token"]))
        identity.save(update_fields=["groups", "last_synced_at", "encrypted_refresh_token"])
        applied = services.apply_roles(user=user, groups=groups, actor=actor)
        record_audit_event(
            actor=actor,
            action="sso.synced",
            object_type="user",
            object_id=user.pk,
            summary={"user": username, "groups": groups[:50], "changes": applied.changes},
        )
    return SyncOutcome(
        username, "applied", _("%(count)d change(s)") % {"count": applied.changes}, applied
    )


def _error_code(response: requests.Response) -> str:
    try:
        return str(response.json().get("error") or "refused")[:60]
    except (ValueError, AttributeError):
        return "refused"


def _refused(*, identity: SsoIdentity, actor: Actor, reason: str) -> SyncOutcome:
    """The IdP no longer vouches for this person: their SSO roles go, the refresh token too."""
    user = identity.user
    with transaction.atomic():
        identity.encrypted_refresh_token = ""
        identity.groups = []
        identity.last_synced_at = utc_now()
        identity.save(update_fields=["encrypted_refresh_token", "groups", "last_synced_at"])
        applied = services.apply_roles(user=user, groups=[], actor=actor)
        record_audit_event(
            actor=actor,
            action="sso.sync_refused",
            object_type="user",
            object_id=user.pk,
            summary={
                "user": user.get_username(),
                "reason": reason,
                "roles_removed": len(applied.removed),
            },
        )
    return SyncOutcome(
        user.get_username(),
        "refused",
        _("the identity provider refused (%(reason)s); %(count)d SSO role(s) removed")
        % {"reason": reason, "count": len(applied.removed)},
        applied,
    )
