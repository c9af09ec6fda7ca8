from django.http import HttpRequest

from dashboard.models import Permission
from dashboard.selectors import membership_list_for_user


def tenancy(request: HttpRequest) -> dict:
    """The tenant switcher's memberships and the current membership's permissions."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    membership = getattr(request, "membership", None)
    return {
        "memberships": membership_list_for_user(request.user),
        "current_tenant": getattr(request, "tenant", None),
        "current_membership": membership,
        "can": {p: membership.can(p) for p in Permission.values} if membership else {},
    }
