"""The forms of the single sign-on page: map a group to a role, remove a group's mapping."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from dashboard.models import Role
from dashboard.sso.services import GROUP_MAX_CHARS


class MappingForm(forms.Form):
    group = forms.CharField(
        label=_("Identity-provider group"),
        max_length=GROUP_MAX_CHARS,
        help_text=_(
            "As your identity provider names it in the groups claim (case does not matter)."
        ),
    )
    role = forms.ChoiceField(label=_("Role in this tenant"), choices=Role.choices)


class MappingRemoveForm(forms.Form):
    group = forms.CharField(max_length=GROUP_MAX_CHARS, widget=forms.HiddenInput)
