"""The Preferences page: a person's language and time zone."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from dashboard.clock import utc_now
from dashboard.preferences import selectors, services
from dashboard.preferences.forms import PreferencesForm
from dashboard.tenancy.scoping import actor_from_request


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def preferences_page(request: HttpRequest) -> HttpResponse:
    saved = selectors.preferences_for_user(request.user)
    if request.method != "POST":
        form = PreferencesForm(initial=saved.as_session())
        return _page(request, form)
    form = PreferencesForm(request.POST)
    if form.is_valid():
        try:
            chosen = services.preferences_update(
                actor=actor_from_request(request),
                language=form.cleaned_data["language"],
                time_zone=form.cleaned_data["time_zone"],
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            services.preferences_remember(request.session, chosen)
            # The confirmation is read on the next page, in the language just chosen.
            translation.activate(chosen.language or translation.get_language_from_request(request))
            messages.success(request, _("Your preferences are saved."))
            return redirect("preferences")
    return _page(request, form, status=422)


def _page(request: HttpRequest, form: PreferencesForm, *, status: int = 200) -> HttpResponse:
    context = {"form": form, "now_moment": utc_now()}
    return render(request, "dashboard/preferences.html", context, status=status)
