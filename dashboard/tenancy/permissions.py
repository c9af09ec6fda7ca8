"""Who may change a tenant's settings: the one check the settings services share."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from dashboard.audit.trail import Actor
from dashboard.models import Membership, Permission, Tenant


def require_tenant_admin(actor: Actor, tenant: Tenant, *, refusal: str) -> Membership:
    """The actor's membership of `tenant` when it may manage the tenant (an admin's role).

    Raises PermissionDenied with `refusal`, the caller's own words for what was refused, when the
    actor is signed out, is not a member of `tenant` or holds a role without the manage
    permission: the three are refused alike, so a refusal does not tell who is a member.
    """
    user = actor.user
    membership = (
        Membership.objects.filter(user=user, tenant=tenant).first()
        if user is not None and user.is_authenticated
        else None
    )
    if membership is None or not membership.can(Permission.MANAGE):
        raise PermissionDenied(refusal)
    return membership
