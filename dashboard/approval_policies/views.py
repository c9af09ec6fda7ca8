"""The approval policies page: everyone sees them; admins add, change and delete them."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from dashboard.approval_policies import selectors, services
from dashboard.approval_policies.forms import PolicyForm
from dashboard.approval_policies.models import ApprovalPolicy
from dashboard.models import Permission
from dashboard.project.errors import form_post
from dashboard.tenancy.scoping import actor_from_request, tenant_view

PAGE = "dashboard/approval_policies.html"


def _initial(policy: ApprovalPolicy) -> dict:
    values = services.policy_snapshot(policy)
    values["office_days"] = list(policy.office_days)
    for field in ("recipients_above", "topics_above", "audience_above"):
        values[field] = "" if values[field] is None else str(values[field])
    return values


def _page(
    request: HttpRequest,
    *,
    form: PolicyForm | None = None,
    editing: ApprovalPolicy | None = None,
    status: int = 200,
) -> HttpResponse:
    if form is None:
        form = PolicyForm(initial=_initial(editing)) if editing else PolicyForm()
    return render(
        request,
        PAGE,
        {
            "policies": list(selectors.policy_list(tenant=request.tenant)),
            "form": form,
            "editing": editing,
            "approvers": selectors.approver_count(tenant=request.tenant),
        },
        status=status,
    )


def _policy(request: HttpRequest, policy_id: int) -> ApprovalPolicy:
    try:
        return selectors.policy_get(tenant=request.tenant, policy_id=policy_id)
    except ApprovalPolicy.DoesNotExist:
        raise Http404(_("No such policy.")) from None


def _data(form: PolicyForm) -> dict:
    data = dict(form.cleaned_data)
    data["office_days"] = "".join(data.get("office_days") or [])
    return data


def _add_errors(form: PolicyForm, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


@tenant_view(Permission.VIEW)
@require_GET
def policy_list(request: HttpRequest) -> HttpResponse:
    return _page(request)


@tenant_view(Permission.MANAGE)
@require_GET
def policy_edit_page(request: HttpRequest, policy_id: int) -> HttpResponse:
    return _page(request, editing=_policy(request, policy_id))


@tenant_view(Permission.MANAGE)
@form_post("approval_policy_list")
def policy_create(request: HttpRequest) -> HttpResponse:
    form = PolicyForm(request.POST)
    if form.is_valid():
        try:
            policy = services.policy_create(
                actor=actor_from_request(request), tenant=request.tenant, data=_data(form)
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, _("Policy '%(name)s' added.") % {"name": policy.name})
            return redirect("approval_policy_list", tenant_slug=request.tenant.slug)
    messages.error(request, _("Nothing was saved: correct the fields marked below."))
    return _page(request, form=form, status=422)


@tenant_view(Permission.MANAGE)
@form_post("approval_policy_edit", "policy_id")
def policy_update(request: HttpRequest, policy_id: int) -> HttpResponse:
    policy = _policy(request, policy_id)
    form = PolicyForm(request.POST)
    if form.is_valid():
        try:
            policy = services.policy_update(
                actor=actor_from_request(request), policy=policy, data=_data(form)
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, _("Policy '%(name)s' saved.") % {"name": policy.name})
            return redirect("approval_policy_list", tenant_slug=request.tenant.slug)
    messages.error(request, _("Nothing was saved: correct the fields marked below."))
    return _page(request, form=form, editing=policy, status=422)


@tenant_view(Permission.MANAGE)
@form_post("approval_policy_list")
def policy_delete(request: HttpRequest, policy_id: int) -> HttpResponse:
    policy = _policy(request, policy_id)
    try:
        services.policy_delete(actor=actor_from_request(request), policy=policy)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, _("Policy '%(name)s' deleted.") % {"name": policy.name})
    return redirect("approval_policy_list", tenant_slug=request.tenant.slug)
