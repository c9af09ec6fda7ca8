"""What the single sign-on page, the API and the commands read."""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet

from dashboard.models import Membership, MembershipSource, Tenant
from dashboard.sso.models import SsoGroupMapping, SsoIdentity


def mapping_list(*, tenant: Tenant) -> QuerySet[SsoGroupMapping]:
    """The tenant's group → role mappings, by group name."""
    return SsoGroupMapping.objects.filter(tenant=tenant).order_by("group", "id")


def sso_members(*, tenant: Tenant) -> QuerySet[Membership]:
    """The tenant's memberships that single sign-on made and keeps in step."""
    return (
        Membership.objects.filter(tenant=tenant, source=MembershipSource.SSO)
        .select_related("user", "user__sso_identity")
        .order_by("user__username")
    )


def identities_to_sync(*, email: str = "") -> QuerySet[SsoIdentity]:
    """The IdP accounts the sync command visits (one person's when `email` is given)."""
    found = SsoIdentity.objects.select_related("user").order_by("pk")
    if email:
        found = found.filter(user__email__iexact=email)
    return found


def groups_claim() -> str:
    """The name of the claim that carries a person's groups (SSO_GROUPS_CLAIM)."""
    return settings.SSO_GROUPS_CLAIM
