"""Writes for tenants, memberships, connections, credentials and login lockouts. Every write is
audited in the same transaction."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Any

from axes.utils import reset as axes_reset
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_variables

from dashboard import plugins
from dashboard.accounts.lockout import locked_everywhere
from dashboard.api.models import Webhook
from dashboard.audit.trail import Actor, record_audit_event, save_with_audit
from dashboard.chat_webhooks.models import ChatWebhook
from dashboard.input_checks import nested_unstorable_reason
from dashboard.login_sessions.services import member_access_end
from dashboard.models import (
    SECRET_FIELDS,
    ConnectionSecret,
    Membership,
    MembershipSource,
    OptimoveKeyRole,
    Role,
    Tenant,
    VendorConnection,
    VendorKind,
)
from dashboard.runs.operations import ConnectionCheck, connection_check_for
from dashboard.sso.models import SsoIdentity
from dashboard.tenancy.credentials import connection_secrets
from dashboard.tenancy.crypto import (
    CredentialDecryptionError,
    check_secret,
    encrypt_secret,
    reencrypt_secret,
)
from dashboard.tenancy.selectors import user_administers_a_tenant
from dashboard.vendors.http import ConfigurationError, validate_base_url

User = get_user_model()
logger = logging.getLogger(__name__)


def tenant_create(*, actor: Actor, name: str, slug: str = "", **settings: Any) -> Tenant:
    """Create a tenant (slug derived from the name when not given)."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": _("A tenant needs a name.")})
    slug = slugify(slug or name)
    if not slug:
        raise ValidationError({"slug": _("The name must contain letters or digits.")})
    if Tenant.objects.filter(slug=slug).exists() or Tenant.objects.filter(name=name).exists():
        raise ValidationError(
            {"name": _("A tenant named '%(name)s' already exists.") % {"name": name}}
        )
    tenant = Tenant(name=name, slug=slug, **settings)
    tenant.full_clean()
    save_with_audit(
        tenant,
        actor=actor,
        tenant=tenant,
        action="tenant.created",
        object_type="tenant",
        summary={"name": tenant.name, "slug": tenant.slug},
    )
    return tenant


TENANT_SETTING_FIELDS = (
    "approval_required",
    "require_files_landed",
    "approval_valid_minutes",
    "duplicate_window_minutes",
)


def tenant_settings_update(*, actor: Actor, tenant: Tenant, **changes: Any) -> Tenant:
    """Change a tenant's settings; records old and new values."""
    unknown = set(changes) - set(TENANT_SETTING_FIELDS)
    if unknown:
        raise ValidationError(
            _("Unknown tenant settings: %(names)s") % {"names": ", ".join(sorted(unknown))}
        )
    with transaction.atomic():
        # NO KEY UPDATE: the same row lock as the save takes, not blocking inserts for the tenant.
        tenant = Tenant.objects.select_for_update(no_key=True).get(pk=tenant.pk)
        diff = {
            field: {"from": getattr(tenant, field), "to": value}
            for field, value in changes.items()
            if getattr(tenant, field) != value
        }
        for field, value in changes.items():
            setattr(tenant, field, value)
        tenant.full_clean()
        tenant.save()
        if diff:
            record_audit_event(
                actor=actor,
                tenant=tenant,
                action="tenant.settings_changed",
                object_type="tenant",
                object_id=tenant.pk,
                summary=diff,
            )
    return tenant


def _validate_role(role: str) -> str:
    if role not in Role.values:
        raise ValidationError(
            {
                "role": _("Unknown role '%(role)s'; choose one of %(roles)s.")
                % {"role": role, "roles": ", ".join(Role.values)}
            }
        )
    return role


def membership_add(
    *, actor: Actor, tenant: Tenant, user: AbstractBaseUser, role: str
) -> Membership:
    """Give a user a role in a tenant."""
    _validate_role(role)
    if Membership.objects.filter(tenant=tenant, user=user).exists():
        raise ValidationError(
            {
                "user": _("%(username)s is already a member of %(tenant)s.")
                % {"username": user.get_username(), "tenant": tenant}
            }
        )
    with transaction.atomic():
        membership = Membership.objects.create(tenant=tenant, user=user, role=role)
        record_audit_event(
            actor=actor,
            tenant=tenant,
            action="member.added",
            object_type="membership",
            object_id=membership.pk,
            summary={"user": user.get_username(), "role": role},
        )
    return membership


def membership_change_role(*, actor: Actor, membership: Membership, role: str) -> Membership:
    """Change a member's role; the last admin of a tenant cannot be demoted."""
    _validate_role(role)
    with transaction.atomic():
        membership = (
            Membership.objects.select_for_update()
            .select_related("user", "tenant")
            .get(pk=membership.pk)
        )
        old_role = membership.role
        if old_role == role:
            return membership
        if old_role == Role.ADMIN and _admin_count(membership.tenant) <= 1:
            raise ValidationError({"role": _("A tenant must keep at least one admin.")})
        membership.role = role
        # A role set by hand is the person's choice from now on: single sign-on leaves it alone.
        from_sso = membership.source == MembershipSource.SSO
        membership.source = MembershipSource.MANUAL
        membership.save(update_fields=["role", "source"])
        record_audit_event(
            actor=actor,
            tenant=membership.tenant,
            action="member.role_changed",
            object_type="membership",
            object_id=membership.pk,
            summary={
                "user": membership.user.get_username(),
                "from": old_role,
                "to": role,
                **({"was_from_sso": True} if from_sso else {}),
            },
        )
    return membership


@dataclass(frozen=True)
class MemberRemoved:
    """What removing a member took away at once besides the membership."""

    sessions_ended: int
    api_tokens_revoked: int


def membership_remove(*, actor: Actor, membership: Membership) -> MemberRemoved:
    """Remove a member; the last admin of a tenant cannot be removed.

    Their access ends at once, in the same transaction: every session of the person (sessions
    are the person's, not the tenant's, so they log in again for their other tenants too) and
    their API tokens of this tenant, revoked so that adding them back does not revive them.
    """
    with transaction.atomic():
        membership = (
            Membership.objects.select_for_update()
            .select_related("user", "tenant")
            .get(pk=membership.pk)
        )
        if membership.role == Role.ADMIN and _admin_count(membership.tenant) <= 1:
            raise ValidationError(_("A tenant must keep at least one admin."))
        sessions, tokens = member_access_end(actor=actor, membership=membership)
        record_audit_event(
            actor=actor,
            tenant=membership.tenant,
            action="member.removed",
            object_type="membership",
            object_id=membership.pk,
            summary={
                "user": membership.user.get_username(),
                "role": membership.role,
                "sessions_ended": sessions,
                # Not "..._tokens_...": the audit trail redacts values under secret-like keys.
                "api_clients_revoked": tokens,
            },
        )
        membership.delete()
    return MemberRemoved(sessions_ended=sessions, api_tokens_revoked=tokens)


def _admin_count(tenant: Tenant) -> int:
    return Membership.objects.filter(tenant=tenant, role=Role.ADMIN).count()


def validate_connection_fields(*, kind: str, name: str, base_url: str, options: dict) -> None:
    """Raise ValidationError for an unknown kind, an empty name, a bad base URL or bad options."""
    errors: dict[str, str] = {}
    if kind not in VendorKind.values:
        errors["kind"] = _("Unknown vendor kind '%(kind)s'; choose one of %(kinds)s.") % {
            "kind": kind,
            "kinds": ", ".join(VendorKind.values),
        }
    if not name.strip():
        errors["name"] = _("A connection needs a name.")
    elif len(name.strip()) > 120:
        errors["name"] = _("A connection's name may be at most 120 characters.")
    try:
        validate_base_url(base_url)
    except ConfigurationError as error:
        errors["base_url"] = str(error)
    reason = nested_unstorable_reason(options)
    if reason:
        errors["options"] = _("The options contain %(reason)s, which cannot be stored.") % {
            "reason": reason
        }
    key_role = options.get("key_role")
    if key_role is not None and key_role not in OptimoveKeyRole.values:
        errors["options"] = _("Unknown key role '%(role)s'.") % {"role": key_role}
    if errors:
        raise ValidationError(errors)


@sensitive_variables()
def connection_create(
    *,
    actor: Actor,
    tenant: Tenant,
    kind: str,
    name: str,
    base_url: str,
    secrets: dict[str, str],
    options: dict | None = None,
) -> VendorConnection:
    """Create a connection with all the secrets its kind needs, or nothing at all."""
    options = options or {}
    validate_connection_fields(kind=kind, name=name, base_url=base_url, options=options)
    needed = SECRET_FIELDS[kind]
    missing = [label for field, label in needed.items() if not (secrets.get(field) or "").strip()]
    if missing:
        raise ValidationError(
            {"secrets": _("Missing: %(names)s.") % {"names": ", ".join(str(m) for m in missing)}}
        )
    if VendorConnection.objects.filter(tenant=tenant, name=name.strip()).exists():
        raise ValidationError(
            {"name": _("This tenant already has a connection named '%(name)s'.") % {"name": name}}
        )
    try:
        return _connection_insert(
            actor=actor,
            tenant=tenant,
            kind=kind,
            name=name,
            base_url=base_url,
            secrets=secrets,
            options=options,
        )
    except IntegrityError:
        # Two creates of one name at once: both passed the check above, the unique constraint
        # let one in. The other is the same answer as if it had come second.
        if VendorConnection.objects.filter(tenant=tenant, name=name.strip()).exists():
            raise ValidationError(
                {
                    "name": _("This tenant already has a connection named '%(name)s'.")
                    % {"name": name}
                }
            ) from None
        raise


@sensitive_variables()
def _connection_insert(
    *,
    actor: Actor,
    tenant: Tenant,
    kind: str,
    name: str,
    base_url: str,
    secrets: dict[str, str],
    options: dict,
) -> VendorConnection:
    needed = SECRET_FIELDS[kind]
    with transaction.atomic():
        connection = VendorConnection.objects.create(
            tenant=tenant, kind=kind, name=name.strip(), base_url=base_url.strip(), options=options
        )
        record_audit_event(
            actor=actor,
            tenant=tenant,
            action="connection.created",
            object_type="connection",
            object_id=connection.pk,
            summary={
                "name": connection.name,
                "kind": kind,
                "base_url": connection.base_url,
                "options": options,
            },
        )
        for field in needed:
            _store_secret(actor=actor, connection=connection, name=field, value=secrets[field])
    return connection


def connection_update(
    *,
    actor: Actor,
    connection: VendorConnection,
    name: str,
    base_url: str,
    options: dict,
    is_active: bool,
) -> VendorConnection:
    """Change a connection's non-secret fields; records what changed."""
    validate_connection_fields(kind=connection.kind, name=name, base_url=base_url, options=options)
    try:
        return _connection_save(
            actor=actor,
            connection=connection,
            name=name,
            base_url=base_url,
            options=options,
            is_active=is_active,
        )
    except IntegrityError:
        # Two renames to one name at once (of two connections, so neither row lock waits for the
        # other): both passed the check in _connection_save, the unique constraint let one in.
        # The other is the same answer as if it had come second.
        if (
            VendorConnection.objects.filter(tenant_id=connection.tenant_id, name=name.strip())
            .exclude(pk=connection.pk)
            .exists()
        ):
            raise ValidationError(
                {
                    "name": _("This tenant already has a connection named '%(name)s'.")
                    % {"name": name}
                }
            ) from None
        raise


def _connection_save(
    *,
    actor: Actor,
    connection: VendorConnection,
    name: str,
    base_url: str,
    options: dict,
    is_active: bool,
) -> VendorConnection:
    with transaction.atomic():
        connection = VendorConnection.objects.select_for_update().get(pk=connection.pk)
        if (
            name.strip() != connection.name
            and VendorConnection.objects.filter(
                tenant_id=connection.tenant_id, name=name.strip()
            ).exists()
        ):
            raise ValidationError(
                {
                    "name": _("This tenant already has a connection named '%(name)s'.")
                    % {"name": name}
                }
            )
        new_values = {
            "name": name.strip(),
            "base_url": base_url.strip(),
            "options": options,
            "is_active": is_active,
        }
        diff = {
            field: {"from": getattr(connection, field), "to": value}
            for field, value in new_values.items()
            if getattr(connection, field) != value
        }
        for field, value in new_values.items():
            setattr(connection, field, value)
        connection.save()
        if diff:
            record_audit_event(
                actor=actor,
                tenant=connection.tenant,
                action="connection.changed",
                object_type="connection",
                object_id=connection.pk,
                summary=diff,
            )
    return connection


@sensitive_variables()
def connection_secret_set(
    *, actor: Actor, connection: VendorConnection, name: str, value: str
) -> ConnectionSecret:
    """Replace one secret of a connection (the audit row says which, never the value)."""
    if name not in connection.secret_fields:
        raise ValidationError(
            {
                "name": _("A %(kind)s connection has no secret '%(name)s'.")
                % {"kind": connection.get_kind_display(), "name": name}
            }
        )
    if not value.strip():
        raise ValidationError({"value": _("The secret must not be empty.")})
    with transaction.atomic():
        return _store_secret(actor=actor, connection=connection, name=name, value=value)


@sensitive_variables()
def _store_secret(
    *, actor: Actor, connection: VendorConnection, name: str, value: str
) -> ConnectionSecret:
    value = value.strip()
    secret, created = ConnectionSecret.objects.update_or_create(
        connection=connection,
        name=name,
        defaults={
            "encrypted_value": encrypt_secret(value),
            "hint": value[-4:] if len(value) >= 8 else "",
            "set_at": timezone.now(),
            "set_by": actor.user
            if actor.user is not None and actor.user.is_authenticated
            else None,
        },
    )
    record_audit_event(
        actor=actor,
        tenant=connection.tenant,
        action="connection.secret_set" if created else "connection.secret_replaced",
        object_type="connection",
        object_id=connection.pk,
        summary={"connection": connection.name, "secret": name},
    )
    return secret


def connection_test(*, actor: Actor, connection: VendorConnection) -> ConnectionCheck:
    """Prove the connection reaches its vendor, with a call that changes nothing there (a read
    where the vendor has one, else DNS + TCP + TLS only; never a trigger), and audit the result.

    Admins of the connection's tenant only (and an operator at the command line, with no user):
    PermissionDenied otherwise. The result and its audit row say what was checked, never a secret.
    """
    user = actor.user
    if user is not None and not (
        user.is_active
        and (
            user.is_superuser
            or Membership.objects.filter(
                user=user, tenant_id=connection.tenant_id, role=Role.ADMIN
            ).exists()
        )
    ):
        raise PermissionDenied(_("Only an admin of this tenant may test its connections."))
    try:
        secrets = connection_secrets(connection)
    except CredentialDecryptionError:
        result = ConnectionCheck(
            False,
            _(
                "The connection's stored secrets cannot be decrypted with the configured keys; "
                "nothing was sent. Set the secrets again."
            ),
        )
    else:
        try:
            result = connection_check_for(connection.kind).check_connection(connection, secrets)
        except Exception as error:  # a check must answer, never raise into the page
            logger.exception("connection test of connection %s failed", connection.pk)
            result = ConnectionCheck(
                False,
                _("The test itself failed (%(error)s); nothing was triggered.")
                % {"error": type(error).__name__},
            )
    with transaction.atomic():
        record_audit_event(
            actor=actor,
            tenant=connection.tenant,
            action="connection.tested",
            object_type="connection",
            object_id=connection.pk,
            summary={
                "connection": connection.name,
                "result": "ok" if result.ok else "failed",
                "checked": result.checked,
            },
        )
    return result


@dataclass
class KeyRotation:
    """What a key rotation re-encrypted: counts, and the names of the files it could not (never
    a value or a file's contents)."""

    secrets: int = 0
    webhook_secrets: int = 0
    # Single sign-on refresh tokens re-encrypted, and those no key fitted (dropped: the person's
    # next login stores a new one; until then sso_sync skips them).
    sso_refresh: int = 0
    sso_refresh_dropped: int = 0
    chat_webhook_urls: int = 0
    files: int = 0
    files_current: int = 0
    files_gone: int = 0
    files_not_ours: int = 0
    # File name (relative to the upload directory) -> why it was left as it was.
    files_failed: dict[str, str] = field(default_factory=dict)

    def audit_summary(self) -> dict[str, Any]:
        # No key may hold "secret" or "token": the audit would redact its value (audit.scrub).
        return {
            "connection_credentials": self.secrets,
            "webhooks": self.webhook_secrets,
            "sso_refresh": self.sso_refresh,
            "sso_refresh_dropped": self.sso_refresh_dropped,
            "chat_webhook_urls": self.chat_webhook_urls,
            "files_reencrypted": self.files,
            "files_already_current": self.files_current,
            "files_gone": self.files_gone,
            "files_not_ours": self.files_not_ours,
            "files_failed": sorted(self.files_failed),
        }


def credentials_rotate_key(*, actor: Actor) -> KeyRotation:
    """Re-encrypt everything stored under CREDENTIALS_KEYS under its newest (first) key: the
    vendor connections' secrets, the webhooks' signing secrets, the single sign-on refresh tokens,
    the chat webhook URLs and the stored Altcraft files.

    1. Every secret in the database is checked against the keys first: one that no key fits
       raises CredentialDecryptionError before anything, file or row, is changed.
    2. The stored files, through each app's `AppConfig.key_rotation_hooks` (Altcraft's
       campaigns.altcraft_launches.storage.rotate_stored_files): every regular file in
       ALTCRAFT_UPLOAD_DIR with the TDENC1 header, not only those a launch refers to. An upload
       is on disk before its launch row exists (the upload handler writes it, launch_create
       records it), and any file left under an old key is unreadable once that key is removed.
       Files already under the newest key are left alone, files deleted meanwhile are skipped;
       a file that cannot be re-encrypted stays as it was, is named in `files_failed`, and the
       others go on.
    3. One transaction re-encrypts the database secrets and records `credentials.key_rotated`
       with the counts, so the audit row commits with the change it describes.

    The old keys may be removed only when `files_failed` is empty.
    """
    _stored_secrets_check()
    rotation = KeyRotation()
    for rotate_files in plugins.contributions("key_rotation_hooks"):
        rotate_files(rotation)
    with transaction.atomic():
        for secret in ConnectionSecret.objects.select_for_update().order_by("pk"):
            secret.encrypted_value = reencrypt_secret(secret.encrypted_value)
            secret.save(update_fields=["encrypted_value"])
            rotation.secrets += 1
        for webhook in Webhook.objects.select_for_update().order_by("pk"):
            webhook.encrypted_secret = reencrypt_secret(webhook.encrypted_secret)
            webhook.save(update_fields=["encrypted_secret"])
            rotation.webhook_secrets += 1
        identities = SsoIdentity.objects.select_for_update().exclude(encrypted_refresh_token="")
        for identity in identities.order_by("pk"):
            try:
                identity.encrypted_refresh_token = reencrypt_secret(
                    identity.encrypted_refresh_token
                )
                rotation.sso_refresh += 1
            except CredentialDecryptionError:
                identity.encrypted_refresh_token = ""
                rotation.sso_refresh_dropped += 1
            identity.save(update_fields=["encrypted_refresh_token"])
        for chat in ChatWebhook.objects.select_for_update().order_by("pk"):
            for column in ("slack_url_encrypted", "teams_url_encrypted"):
                if getattr(chat, column):
                    setattr(chat, column, reencrypt_secret(getattr(chat, column)))
                    rotation.chat_webhook_urls += 1
            chat.save(update_fields=["slack_url_encrypted", "teams_url_encrypted"])
        record_audit_event(
            actor=actor,
            action="credentials.key_rotated",
            object_type="credentials",
            summary=rotation.audit_summary(),
        )
    return rotation


def _stored_secrets_check() -> None:
    """CredentialDecryptionError naming the first secret in the database no key fits."""
    secrets = ConnectionSecret.objects.values_list(
        "connection__tenant__slug", "connection__name", "name", "encrypted_value"
    )
    for tenant, connection, name, stored in secrets.order_by("pk").iterator():
        try:
            check_secret(stored)
        except CredentialDecryptionError as error:
            raise CredentialDecryptionError(
                f"The secret {name!r} of connection {connection!r} ({tenant}): {error}"
            ) from None
    webhooks = Webhook.objects.values_list("tenant__slug", "encrypted_secret")
    for tenant, stored in webhooks.order_by("pk").iterator():
        try:
            check_secret(stored)
        except CredentialDecryptionError as error:
            raise CredentialDecryptionError(
                f"The webhook signing secret of {tenant}: {error}"
            ) from None
    chats = ChatWebhook.objects.values_list(
        "tenant__slug", "slack_url_encrypted", "teams_url_encrypted"
    )
    for tenant, *stored_urls in chats.order_by("pk").iterator():
        for stored in stored_urls:
            try:
                if stored:
                    check_secret(stored)
            except CredentialDecryptionError as error:
                raise CredentialDecryptionError(
                    f"A chat webhook URL of {tenant}: {error}"
                ) from None


def user_create(
    *, username: str, password: str | None, email: str = "", actor: Actor | None = None
) -> AbstractBaseUser:
    """Create a user account (used by the demo, the ops commands and invitations); audited on
    the global chain when an actor is given."""
    user = User(username=username, email=email)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.full_clean(exclude=["password"])
    with transaction.atomic():
        user.save()
        if actor is not None:
            record_audit_event(
                actor=actor,
                action="user.created",
                object_type="user",
                object_id=user.pk,
                summary={"username": username, "email": email, "can_log_in": bool(password)},
            )
    return user


@dataclass(frozen=True)
class LoginUnlock:
    """What login_unlock did."""

    username: str
    ip_address: str | None
    # django-axes' records of failed logins removed (0: nothing was locked or counting).
    records_removed: int
    # After an unlock at one address: the name is still locked from every address.
    still_locked_everywhere: bool


def login_unlock(*, actor: Actor, username: str, ip_address: str | None = None) -> LoginUnlock:
    """Lift the login lockout of `username`, through django-axes, and audit it (`auth.unlocked`).

    With `ip_address`, only the name's failures from that address go (the name-at-an-address
    rule); the name-from-anywhere rule may still lock it, which the result says. Without it,
    every failure of the name goes, which lifts both rules. Only an active superuser or an admin
    of some tenant may (PermissionDenied, checked before anything is reset): a lockout protects
    an account of any tenant. An unknown user name or a malformed address is a ValidationError.
    """
    user = actor.user
    if (
        user is None
        or not user.is_active
        or not (user.is_superuser or user_administers_a_tenant(user=user))
    ):
        raise PermissionDenied(
            _(
                "Only a superuser or an admin of a tenant may lift a login lockout; %(actor)s "
                "is neither."
            )
            % {"actor": actor.display}
        )
    locked = User.objects.filter(username=username).first()
    if locked is None:
        raise ValidationError(
            {"username": _("No user named '%(username)s'.") % {"username": username}}
        )
    if ip_address is not None:
        try:
            ip_address = str(ipaddress.ip_address(ip_address.strip()))
        except ValueError:
            raise ValidationError(
                {"ip_address": _("'%(address)s' is not an IP address.") % {"address": ip_address}}
            ) from None
    with transaction.atomic():
        # axes' public API, through the configured handler (dashboard.accounts.lockout): the
        # lockout is nothing but these records, so removing them lifts it at once.
        removed = axes_reset(ip=ip_address, username=username)
        record_audit_event(
            actor=actor,
            action="auth.unlocked",
            object_type="user",
            object_id=locked.pk,
            summary={"username": username, "ip_address": ip_address, "records_removed": removed},
        )
    return LoginUnlock(
        username=username,
        ip_address=ip_address,
        records_removed=removed,
        still_locked_everywhere=ip_address is not None and locked_everywhere(username),
    )
