"""Reads, scoped to the tenant the caller is allowed to see."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.http import Http404

from dashboard.models import AuditEvent, Membership, Tenant, VendorConnection


def membership_list_for_user(user: AbstractBaseUser) -> QuerySet[Membership]:
    """The user's memberships, for the tenant switcher."""
    return Membership.objects.filter(user=user).select_related("tenant").order_by("tenant__name")


def membership_for(*, user: AbstractBaseUser, tenant_slug: str) -> Membership:
    """The user's membership in the tenant with this slug; 404 when there is none."""
    try:
        return Membership.objects.select_related("tenant").get(user=user, tenant__slug=tenant_slug)
    except Membership.DoesNotExist:
        raise Http404("No such tenant.") from None


def member_list(*, tenant: Tenant) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(tenant=tenant).select_related("user").order_by("user__username")
    )


def member_get(*, tenant: Tenant, membership_id: int) -> Membership:
    try:
        return Membership.objects.select_related("user", "tenant").get(
            tenant=tenant, pk=membership_id
        )
    except Membership.DoesNotExist:
        raise Http404("No such member.") from None


def connection_list(*, tenant: Tenant, kind: str | None = None) -> QuerySet[VendorConnection]:
    connections = VendorConnection.objects.filter(tenant=tenant).prefetch_related("secrets")
    if kind:
        connections = connections.filter(kind=kind)
    return connections.order_by("name")


def connection_get(*, tenant: Tenant, connection_id: int) -> VendorConnection:
    try:
        return VendorConnection.objects.prefetch_related("secrets").get(
            tenant=tenant, pk=connection_id
        )
    except VendorConnection.DoesNotExist:
        raise Http404("No such connection.") from None


def audit_event_list(
    *,
    tenant: Tenant,
    action: str = "",
    actor: str = "",
    object_type: str = "",
    object_id: str = "",
) -> QuerySet[AuditEvent]:
    """The tenant's audit events, newest first, optionally filtered."""
    events = AuditEvent.objects.filter(tenant=tenant)
    if action:
        events = events.filter(action__startswith=action)
    if actor:
        events = events.filter(actor_label__icontains=actor)
    if object_type:
        events = events.filter(object_type=object_type)
    if object_id:
        events = events.filter(object_id=object_id)
    return events.order_by("-created_at", "-id")
