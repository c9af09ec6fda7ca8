"""Single sign-on's pages: the start of a login (to the IdP, with state, nonce and PKCE), the
callback that finishes it or refuses it (audited), and the tenant admin's group → role page."""

from __future__ import annotations

from django.conf import settings
from django.contrib import auth, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET
from mozilla_django_oidc.views import OIDCAuthenticationRequestView

from dashboard.models import Permission, Role
from dashboard.project.errors import form_post
from dashboard.sso import configuration, selectors, services
from dashboard.sso.forms import MappingForm, MappingRemoveForm
from dashboard.sso.services import LoginRefused, NoAccess
from dashboard.tenancy.forms import apply_service_errors
from dashboard.tenancy.scoping import actor_from_request, client_ip, tenant_view

BACKEND_PATH = "dashboard.sso.backends.SingleSignOnBackend"


class SingleSignOnStartView(OIDCAuthenticationRequestView):
    """mozilla-django-oidc's authorization request (state, nonce, PKCE S256 kept in the
    session), to the authorization endpoint that discovery names."""

    def __init__(self, *args, **kwargs):
        super(OIDCAuthenticationRequestView, self).__init__(*args, **kwargs)

    @staticmethod
    def get_settings(attr, *args):
        fixed = {
            "OIDC_RP_SCOPES": SingleSignOnStartView.scopes(),
            "OIDC_USE_NONCE": True,
            "OIDC_USE_PKCE": True,
            "OIDC_PKCE_CODE_CHALLENGE_METHOD": "S256",
            "OIDC_AUTHENTICATION_CALLBACK_URL": "sso_callback",
        }
        if attr in fixed:
            return fixed[attr]
        return OIDCAuthenticationRequestView.get_settings(attr, *args)

    @staticmethod
    def scopes() -> str:
        scopes = settings.SSO_OIDC_SCOPES.split()
        return " ".join(scopes if "openid" in scopes else ["openid", *scopes])

    def get(self, request):
        if not configuration.sso_enabled():
            raise Http404(_("Single sign-on is not set up for this TriggerDesk."))
        try:
            found = configuration.discovery()
        except configuration.ProviderUnavailable:
            return _refusal_page(
                request,
                _("The identity provider cannot be reached just now; try again in a minute."),
                status=503,
            )
        self.OIDC_OP_AUTH_ENDPOINT = found.authorization_endpoint
        self.OIDC_RP_CLIENT_ID = settings.SSO_OIDC_CLIENT_ID
        return super().get(request)


@require_GET
def sso_callback(request: HttpRequest) -> HttpResponse:
    """Where the IdP sends the browser back: check the state, then let the backend check the
    code, the ID token and the claims. A refusal is audited (sso.login_refused with its reason,
    or sso.no_access) and shown; nothing is granted."""
    if not configuration.sso_enabled():
        raise Http404(_("Single sign-on is not set up for this TriggerDesk."))
    state = request.GET.get("state", "")
    states = request.session.get("oidc_states") or {}
    entry = states.pop(state, None) if state else None
    # Used once: a replayed callback finds no state.
    request.session["oidc_states"] = states
    request.session.save()
    try:
        if request.GET.get("error"):
            raise LoginRefused(
                "provider_error",
                _("The identity provider did not sign you in (%(error)s).")
                % {"error": str(request.GET.get("error"))[:60]},
            )
        if entry is None:
            raise LoginRefused(
                "state_mismatch",
                _(
                    "This sign-in did not start in this browser (or was already used), so it was refused. Start again from the login page."
                ),
            )
        user = auth.authenticate(
            request=request,
            sso_callback=True,
            nonce=entry.get("nonce"),
            code_verifier=entry.get("code_verifier"),
        )
        if user is None:
            raise LoginRefused("not_authenticated", _("The sign-in could not be completed."))
    except LoginRefused as refusal:
        services.refuse_login(
            refusal,
            ip_address=client_ip(request),
            issuer=settings.SSO_OIDC_ISSUER,
        )
        return _refusal_page(
            request,
            refusal.message,
            status=403,
            no_access=isinstance(refusal, NoAccess),
        )
    auth.login(request, user, backend=BACKEND_PATH)
    applied = getattr(request, "sso_roles_applied", None)
    if applied is not None:
        _tell_roles(request, applied)
    return redirect(request.session.pop("oidc_login_next", None) or resolve_url("home"))


def _tell_roles(request: HttpRequest, applied: services.RolesApplied) -> None:
    for tenant, role in applied.granted:
        messages.info(
            request,
            _("Single sign-on gave you the role %(role)s in %(tenant)s.")
            % {"role": role, "tenant": tenant},
        )
    for tenant, _previous, role in applied.changed:
        messages.info(
            request,
            _("Single sign-on changed your role in %(tenant)s to %(role)s.")
            % {"role": role, "tenant": tenant},
        )
    for tenant, role in applied.removed:
        messages.warning(
            request,
            _(
                "Single sign-on removed your role %(role)s in %(tenant)s: you are no longer in its group."
            )
            % {"role": role, "tenant": tenant},
        )
    if applied.unmapped_groups:
        messages.warning(
            request,
            _("These groups of yours give no role in TriggerDesk: %(groups)s.")
            % {"groups": ", ".join(applied.unmapped_groups[:20])},
        )


def _refusal_page(
    request: HttpRequest, message: str, *, status: int, no_access: bool = False
) -> HttpResponse:
    return render(
        request,
        "registration/sso_refused.html",
        {"message": message, "no_access": no_access},
        status=status,
    )


# -- the tenant admin's mapping page ----------------------------------------------------------


def _page(request: HttpRequest, *, form: MappingForm | None = None, status: int = 200):
    return render(
        request,
        "dashboard/sso_mappings.html",
        {
            "mappings": [
                (mapping, Role(mapping.role).label if mapping.role in Role.values else mapping.role)
                for mapping in selectors.mapping_list(tenant=request.tenant)
            ],
            "sso_members": selectors.sso_members(tenant=request.tenant),
            "form": form or MappingForm(),
            "sso_enabled": configuration.sso_enabled(),
            "provider_name": configuration.provider_name(),
            "groups_claim": selectors.groups_claim(),
            "local_passwords": configuration.local_passwords_enabled(),
        },
        status=status,
    )


@tenant_view(Permission.MANAGE)
@require_GET
def mapping_page(request: HttpRequest) -> HttpResponse:
    return _page(request)


@tenant_view(Permission.MANAGE)
@form_post("sso_mapping_page")
def mapping_set(request: HttpRequest) -> HttpResponse:
    form = MappingForm(request.POST)
    if form.is_valid():
        try:
            mapping = services.mapping_set(
                actor=actor_from_request(request),
                tenant=request.tenant,
                group=form.cleaned_data["group"],
                role=form.cleaned_data["role"],
            )
        except ValidationError as error:
            apply_service_errors(form, error)
        else:
            messages.success(
                request,
                _("Members of %(group)s get the role %(role)s at their next sign-in.")
                % {"group": mapping.group, "role": mapping.role},
            )
            return redirect("sso_mapping_page", tenant_slug=request.tenant.slug)
    return _page(request, form=form, status=422)


@tenant_view(Permission.MANAGE)
@form_post("sso_mapping_page")
def mapping_remove(request: HttpRequest) -> HttpResponse:
    form = MappingRemoveForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("This form is incomplete; reload the page."))
        return redirect("sso_mapping_page", tenant_slug=request.tenant.slug)
    try:
        services.mapping_remove(
            actor=actor_from_request(request),
            tenant=request.tenant,
            group=form.cleaned_data["group"],
        )
    except (ValidationError, PermissionDenied) as error:
        messages.error(request, "; ".join(getattr(error, "messages", [str(error)])))
    else:
        messages.success(
            request,
            _(
                "The group %(group)s no longer gives a role; its members lose it at their next sign-in."
            )
            % {"group": form.cleaned_data["group"]},
        )
    return redirect("sso_mapping_page", tenant_slug=request.tenant.slug)
