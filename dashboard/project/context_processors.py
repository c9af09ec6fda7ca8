from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject, new_method_proxy

from dashboard.models import Membership, Permission
from dashboard.pauses import selectors as pause_selectors
from dashboard.runs import selectors as run_selectors
from dashboard.tenancy.selectors import membership_list_for_user


def tenancy(request: HttpRequest) -> dict:
    """The tenant switcher's memberships and the current membership's permissions."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    membership = getattr(request, "membership", None)
    return {
        "memberships": _memberships(request),
        "current_tenant": getattr(request, "tenant", None),
        "current_membership": membership,
        "can": {p: membership.can(p) for p in Permission.values} if membership else {},
    }


def _memberships(request: HttpRequest) -> QuerySet[Membership]:
    """One lazy queryset per request, shared by the switcher and the pause banner."""
    if not hasattr(request, "_switcher_memberships"):
        request._switcher_memberships = membership_list_for_user(request.user)  # type: ignore[attr-defined]
    return request._switcher_memberships  # type: ignore[attr-defined]


def sending_paused(request: HttpRequest) -> dict:
    """The current tenant's open pauses, for the banner on every page. The switcher's
    memberships (read for the header before the banner) say whether the tenant is paused, so
    only a paused tenant's pages make a query of their own (pause_open_by_tenant)."""
    tenant = getattr(request, "tenant", None)
    if tenant is None or not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    memberships = _memberships(request)

    def pauses() -> list:
        if not any(m.tenant_id == tenant.pk and m.tenant_sending_paused for m in memberships):
            return []
        return pause_selectors.open_pauses(tenant=tenant)

    return {"sending_pauses": SimpleLazyObject(pauses)}


class LazyCount(SimpleLazyObject):
    """A number counted when first used; `int()` of it works, so `|add:0` gives the plain number
    that {% blocktranslate count %} needs to choose a plural form."""

    __int__ = new_method_proxy(int)


def approvals_waiting(request: HttpRequest) -> dict:
    """How many requests of the current tenant wait for this user's approval (the navigation's
    badge on every page): one count over the partial index run_awaiting_approval, which stops
    past the cap ("99+")."""
    membership = getattr(request, "membership", None)
    if membership is None or not membership.can(Permission.APPROVE):
        return {}
    # Lazy: counted only when a template shows it (the full pages), not on every htmx poll.
    return {
        "approvals_waiting": LazyCount(
            lambda: run_selectors.approvals_waiting_count(
                tenant=membership.tenant, user=request.user
            )
        ),
        "approvals_badge_cap": run_selectors.APPROVALS_BADGE_CAP,
    }
