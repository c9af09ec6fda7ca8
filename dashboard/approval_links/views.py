"""The approval link's page: what will be sent, and Approve / Reject for its recipient.

Signing in is required (the login page keeps `next=`, so the mailed link lands here after it).
Thin: approval_links.services decides; a refusal is a clear page and changes nothing.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from dashboard.approval_links import services
from dashboard.approval_links.forms import LinkApproveForm, LinkRejectForm
from dashboard.models import Membership
from dashboard.runs.transitions import RunActionError
from dashboard.tenancy.scoping import actor_from_request

TEMPLATE = "dashboard/approval_link.html"


@never_cache
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def approval_link(request: HttpRequest, token: str) -> HttpResponse:
    actor = actor_from_request(request)
    try:
        opened = services.approval_link_open(token=token, actor=actor)
    except services.ApprovalLinkRefused as refused:
        return _refused_page(request, refused)
    _bind_tenant(request, opened)
    if request.method != "POST":
        return _page(request, opened)
    approving = request.POST.get("decision") == "approve"
    form = (
        LinkApproveForm(request.POST, auto_id="approve_%s")
        if approving
        else LinkRejectForm(request.POST, auto_id="reject_%s")
    )
    if not form.is_valid():
        messages.error(request, _("Nothing was changed: %(errors)s") % {"errors": _errors(form)})
        return _page(
            request, opened, forms={"approve" if approving else "reject": form}, status=400
        )
    try:
        done = services.approval_link_decide(
            token=token,
            actor=actor,
            approve=approving,
            comment=form.cleaned_data["comment"],
            fingerprint_seen=form.cleaned_data.get("fingerprint", ""),
        )
    except services.ApprovalLinkRefused as refused:
        if refused.code in ("invalid", "wrong_recipient"):
            return _refused_page(request, refused)
        messages.error(request, refused.message)
        return _page(request, services.approval_link_open(token=token, actor=actor), status=409)
    except (RunActionError, ValidationError, PermissionDenied) as error:
        text = " ".join(error.messages) if isinstance(error, ValidationError) else str(error)
        messages.error(request, _("Nothing was changed: %(reason)s") % {"reason": text})
        return _page(request, services.approval_link_open(token=token, actor=actor), status=409)
    messages.success(request, done)
    return redirect(opened.description.page_path)


def _page(request: HttpRequest, opened: services.OpenedLink, *, forms=None, status: int = 200):
    forms = forms or {}
    return render(
        request,
        TEMPLATE,
        {
            "opened": opened,
            "request_": opened.description,
            "approve_form": forms.get("approve")
            or LinkApproveForm(
                initial={"fingerprint": opened.description.fingerprint}, auto_id="approve_%s"
            ),
            "reject_form": forms.get("reject") or LinkRejectForm(auto_id="reject_%s"),
        },
        status=status,
    )


def _refused_page(request: HttpRequest, refused: services.ApprovalLinkRefused) -> HttpResponse:
    # A link that is not one is a 404 (nothing says whether it ever existed); someone else's
    # link a 403. Neither shows anything of the request.
    status = 404 if refused.code == "invalid" else 403
    return render(request, TEMPLATE, {"refused": refused}, status=status)


def _bind_tenant(request: HttpRequest, opened: services.OpenedLink) -> None:
    """The link's tenant becomes the page's, for the navigation (as a tenant page has it)."""
    membership = (
        Membership.objects.select_related("tenant")
        .filter(user=request.user, tenant_id=opened.link.tenant_id)
        .first()
    )
    if membership is not None:
        request.membership = membership
        request.tenant = membership.tenant


def _errors(form) -> str:
    return " ".join(message for errors in form.errors.values() for message in errors)
