"""The pause page's forms: what to pause and why, what to resume."""

from django import forms
from django.utils.translation import gettext_lazy as _

from dashboard.pauses.services import REASON_MAX_CHARS


class PauseForm(forms.Form):
    # "" for the whole tenant, else a connection's id (checked by the service's lookup).
    connection = forms.CharField(required=False, widget=forms.HiddenInput)
    reason = forms.CharField(
        max_length=REASON_MAX_CHARS,
        strip=True,
        label=_("Reason"),
        error_messages={"required": _("Say why sending is paused.")},
        widget=forms.TextInput(attrs={"placeholder": _("Why stop sending? (shown to everyone)")}),
    )


class ResumeForm(forms.Form):
    connection = forms.CharField(required=False, widget=forms.HiddenInput)
    cancel_held = forms.BooleanField(required=False, label=_("Cancel the held runs first"))
