"""Single sign-on's rules: who may log in, the group → role mapping, and keeping SSO-made
memberships in step with the IdP's groups (at each login, and at once by `sso_sync`).

The login callback (dashboard/sso/backends.py), the mapping page, the API and the commands all
come here, so the same rules and the same audit rows apply whichever way a change arrives.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
from django.utils.translation import gettext as _

from dashboard.audit.trail import Actor, record_audit_event
from dashboard.clock import utc_now
from dashboard.models import Membership, MembershipSource, Role, Tenant
from dashboard.sso.models import SsoGroupMapping, SsoIdentity
from dashboard.tenancy.crypto import encrypt_secret
from dashboard.tenancy.permissions import require_tenant_admin

GROUP_MAX_CHARS = 200
GROUPS_KEPT = 500
# When a person is in several mapped groups of one tenant, the strongest role wins.
ROLE_STRENGTH = [Role.ADMIN, Role.OPERATOR, Role.MARKETER, Role.AUDITOR]


class LoginRefused(Exception):
    """A single sign-on login refused: `reason` is the audited code, `message` what the person
    reads. Nothing was granted."""

    def __init__(self, reason: str, message: str, *, summary: dict[str, Any] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.message = message
        self.summary = summary or {}


class NoAccess(LoginRefused):
    """A verified person whom no mapped group and no membership lets in: nothing is created."""


@dataclass
class RolesApplied:
    """What applying the mapping did to one person's SSO-made memberships."""

    granted: list[tuple[str, str]] = field(default_factory=list)  # (tenant name, role)
    changed: list[tuple[str, str, str]] = field(default_factory=list)  # (tenant, from, to)
    removed: list[tuple[str, str]] = field(default_factory=list)
    kept_manual: list[str] = field(default_factory=list)  # tenants with a hand-made membership
    unmapped_groups: list[str] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return len(self.granted) + len(self.changed) + len(self.removed)


# -- the mapping ------------------------------------------------------------------------------


def _field_error(field_name: str, message: str, code: str) -> ValidationError:
    """A refusal about one field that keeps its code (the API's problem code)."""
    return ValidationError({field_name: ValidationError(message, code=code)})


def clean_group(group: str) -> str:
    """A group name as stored and compared: stripped, not empty, at most GROUP_MAX_CHARS."""
    group = (group or "").strip()
    if not group:
        raise _field_error("group", _("Name the IdP group."), "required")
    if len(group) > GROUP_MAX_CHARS:
        raise _field_error(
            "group",
            _("Keep the group name to %(count)d characters.") % {"count": GROUP_MAX_CHARS},
            "max_length",
        )
    return group


def mapping_set(*, actor: Actor, tenant: Tenant, group: str, role: str) -> SsoGroupMapping:
    """Map an IdP group to a role in the tenant (or change the role it maps to). Applies at each
    member's next login, or at once with `sso_sync`. Audited as sso.mapping_set."""
    require_tenant_admin(
        actor,
        tenant,
        refusal=_("Only an admin of %(tenant)s can change its single sign-on groups.")
        % {"tenant": tenant.name},
    )
    group = clean_group(group)
    if role not in Role.values:
        raise _field_error(
            "role",
            _("Unknown role %(role)r; choose one of %(roles)s.")
            % {"role": role, "roles": ", ".join(Role.values)},
            "invalid_role",
        )
    try:
        with transaction.atomic():
            mapping = (
                SsoGroupMapping.objects.select_for_update()
                .filter(tenant=tenant)
                .annotate(lower_group=Lower("group"))
                .filter(lower_group=group.lower())
                .first()
            )
            previous = mapping.role if mapping else None
            if mapping is None:
                mapping = SsoGroupMapping.objects.create(
                    tenant=tenant,
                    group=group,
                    role=role,
                    created_by_label=actor.display,
                    created_at=utc_now(),
                )
            elif mapping.role == role:
                return mapping
            else:
                mapping.role = role
                mapping.save(update_fields=["role"])
            record_audit_event(
                actor=actor,
                tenant=tenant,
                action="sso.mapping_set",
                object_type="sso_group_mapping",
                object_id=mapping.pk,
                summary={"group": mapping.group, "role": role, "previous_role": previous},
            )
    except IntegrityError:
        # A concurrent request mapped the same group first.
        raise _field_error(
            "group",
            _("The group %(group)r was just mapped by someone else; reload.") % {"group": group},
            "conflict",
        ) from None
    return mapping


def mapping_remove(*, actor: Actor, tenant: Tenant, group: str) -> None:
    """Remove a group's mapping: its members lose that role at their next login (or sync).
    Audited as sso.mapping_removed."""
    require_tenant_admin(
        actor,
        tenant,
        refusal=_("Only an admin of %(tenant)s can change its single sign-on groups.")
        % {"tenant": tenant.name},
    )
    group = clean_group(group)
    with transaction.atomic():
        mapping = (
            SsoGroupMapping.objects.select_for_update()
            .filter(tenant=tenant)
            .annotate(lower_group=Lower("group"))
            .filter(lower_group=group.lower())
            .first()
        )
        if mapping is None:
            raise _field_error(
                "group",
                _("%(tenant)s has no mapping for the group %(group)r.")
                % {"tenant": tenant.name, "group": group},
                "not_found",
            )
        record_audit_event(
            actor=actor,
            tenant=tenant,
            action="sso.mapping_removed",
            object_type="sso_group_mapping",
            object_id=mapping.pk,
            summary={"group": mapping.group, "role": mapping.role},
        )
        mapping.delete()


# -- applying it ------------------------------------------------------------------------------


def groups_from_claims(claims: dict[str, Any], claim_name: str) -> list[str]:
    """The IdP groups in the claims: a list of names (or one name); anything else is no group."""
    value = claims.get(claim_name)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    names = [item.strip() for item in value if isinstance(item, str) and item.strip()]
    return [name[:GROUP_MAX_CHARS] for name in names[:GROUPS_KEPT]]


def roles_for_groups(groups: Iterable[str]) -> tuple[dict[int, str], list[str]]:
    """The role in each tenant the groups give ({tenant id: role}), and the groups no tenant maps."""
    lowered = {group.lower(): group for group in groups}
    wanted: dict[int, str] = {}
    matched: set[str] = set()
    mappings = SsoGroupMapping.objects.annotate(lower_group=Lower("group")).filter(
        lower_group__in=list(lowered)
    )
    for mapping in mappings:
        matched.add(mapping.lower_group)
        current = wanted.get(mapping.tenant_id)
        if current is None or ROLE_STRENGTH.index(mapping.role) < ROLE_STRENGTH.index(current):
            wanted[mapping.tenant_id] = mapping.role
    unmapped = sorted(original for lower, original in lowered.items() if lower not in matched)
    return wanted, unmapped


def apply_roles(*, user: AbstractBaseUser, groups: list[str], actor: Actor) -> RolesApplied:
    """Make the person's SSO-made memberships match their groups: add, change and remove them
    (each audited in its tenant as sso.role_granted / sso.role_changed / sso.role_removed).
    Memberships made by hand are never touched. Groups no tenant maps are audited as
    sso.groups_unmapped."""
    wanted, unmapped = roles_for_groups(groups)
    result = RolesApplied(unmapped_groups=unmapped)
    with transaction.atomic():
        current = {
            membership.tenant_id: membership
            for membership in Membership.objects.select_for_update()
            .select_related("tenant")
            .filter(user=user)
        }
        tenants = Tenant.objects.in_bulk(list(wanted))
        for tenant_id, role in sorted(wanted.items()):
            membership = current.get(tenant_id)
            tenant = tenants[tenant_id]
            if membership is None:
                membership = Membership.objects.create(
                    user=user, tenant=tenant, role=role, source=MembershipSource.SSO
                )
                result.granted.append((tenant.name, role))
                _audit_role(actor, membership, "sso.role_granted", {"role": role}, groups)
            elif membership.source != MembershipSource.SSO:
                result.kept_manual.append(tenant.name)
            elif membership.role != role:
                previous = membership.role
                membership.role = role
                membership.save(update_fields=["role"])
                result.changed.append((tenant.name, previous, role))
                _audit_role(
                    actor, membership, "sso.role_changed", {"from": previous, "to": role}, groups
                )
        for tenant_id, membership in current.items():
            if tenant_id in wanted or membership.source != MembershipSource.SSO:
                continue
            result.removed.append((membership.tenant.name, membership.role))
            _audit_role(actor, membership, "sso.role_removed", {"role": membership.role}, groups)
            membership.delete()
        if unmapped:
            record_audit_event(
                actor=actor,
                action="sso.groups_unmapped",
                object_type="user",
                object_id=user.pk,
                summary={"user": user.get_username(), "groups": unmapped},
            )
    return result


def _audit_role(
    actor: Actor, membership: Membership, action: str, change: dict, groups: list[str]
) -> None:
    record_audit_event(
        actor=actor,
        tenant=membership.tenant,
        action=action,
        object_type="membership",
        object_id=membership.pk,
        summary={"user": membership.user.get_username(), **change, "groups": groups[:50]},
    )


# -- logging in -------------------------------------------------------------------------------


def email_is_verified(claims: dict[str, Any]) -> bool:
    """OpenID Connect's email_verified: a JSON true (some IdPs send the string "true")."""
    value = claims.get("email_verified")
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def refuse_login(refusal: LoginRefused, *, ip_address: str | None, issuer: str = "") -> None:
    """Audit a refused single sign-on login: sso.login_refused with the reason (an attack or a
    broken IdP), or sso.no_access for a verified person nothing lets in."""
    action = "sso.no_access" if isinstance(refusal, NoAccess) else "sso.login_refused"
    record_audit_event(
        actor=Actor(label=str(refusal.summary.get("email") or "sso")[:150], ip_address=ip_address),
        action=action,
        object_type="user",
        summary={"reason": refusal.reason, "issuer": issuer, **refusal.summary},
    )


def login_with_claims(
    *,
    claims: dict[str, Any],
    issuer: str,
    groups_claim: str,
    refresh_token: str = "",
    ip_address: str | None = None,
) -> tuple[AbstractBaseUser, RolesApplied]:
    """The account for verified claims (ID token and userinfo, already checked), with its SSO
    roles applied. Raises LoginRefused (or NoAccess) and grants nothing when the email is not
    verified, matches several accounts or an account held by another IdP subject, or the account
    is disabled; NoAccess for an unknown email whose groups map to no tenant (nothing is created).
    An unknown email with a mapped group gets an account (no usable password) and its roles."""
    subject = str(claims.get("sub") or "")
    email = str(claims.get("email") or "").strip()
    summary = {"email": email, "subject": subject}
    if not subject:
        raise LoginRefused(
            "no_subject", _("The identity provider named no account."), summary=summary
        )
    if not email or not email_is_verified(claims):
        raise LoginRefused(
            "email_not_verified",
            _(
                "Your identity provider has not verified your email address, so TriggerDesk cannot match it to an account."
            ),
            summary=summary,
        )
    groups = groups_from_claims(claims, groups_claim)
    user_model = get_user_model()
    identity = (
        SsoIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject).first()
    )
    if identity is not None:
        user = identity.user
    else:
        users = list(user_model.objects.filter(email__iexact=email)[:2])
        if len(users) > 1:
            raise LoginRefused(
                "ambiguous_email",
                _(
                    "More than one TriggerDesk account has this email address; ask an admin to fix it."
                ),
                summary=summary,
            )
        user = users[0] if users else None
        if user is not None and SsoIdentity.objects.filter(user=user).exists():
            # The email moved to another IdP account: the first one keeps this account.
            raise LoginRefused(
                "subject_mismatch",
                _(
                    "This email address belongs to an account linked to another identity-provider account."
                ),
                summary=summary,
            )
    if user is not None and not user.is_active:
        raise LoginRefused("account_disabled", _("This account is disabled."), summary=summary)
    if user is None:
        wanted, _unmapped = roles_for_groups(groups)
        if not wanted:
            raise NoAccess(
                "no_access",
                _(
                    "You signed in at your identity provider, but none of your groups gives access to TriggerDesk. Ask your TriggerDesk admin to map one of your groups to a role."
                ),
                summary={**summary, "groups": groups[:50]},
            )
    now = utc_now()
    with transaction.atomic():
        actor = Actor(user=user, ip_address=ip_address) if user else None
        if user is None:
            user = _create_sso_user(email=email, ip_address=ip_address)
            actor = Actor(user=user, ip_address=ip_address)
        if identity is None:
            identity = SsoIdentity(user=user, issuer=issuer, subject=subject)
        identity.groups = groups
        identity.last_login_at = now
        if refresh_token:
            identity.encrypted_refresh_token = encrypt_secret(refresh_token)
        identity.save()
        applied = apply_roles(user=user, groups=groups, actor=actor)
    return user, applied


def _create_sso_user(*, email: str, ip_address: str | None) -> AbstractBaseUser:
    """A new account for single sign-on: named by its email, no usable password."""
    user_model = get_user_model()
    username = email.lower()[:150]
    suffix = 1
    while user_model.objects.filter(username=username).exists():
        suffix += 1
        username = f"{email.lower()[: 150 - len(str(suffix)) - 1]}-{suffix}"
    user = user_model(username=username, email=email)
    user.set_unusable_password()
    user.save()
    record_audit_event(
        actor=Actor(user=user, ip_address=ip_address),
        action="user.created",
        object_type="user",
        object_id=user.pk,
        summary={"username": username, "email": email, "can_log_in": False, "by": "sso"},
    )
    return user
