"""The policy form. Every field is read as typed and parsed by services.clean_policy, so the
page, the API and the commands give the same errors (a threshold that is not a number...)."""

from django import forms
from django.utils.translation import gettext_lazy as _

from dashboard.approval_policies.models import WEEKDAYS
from dashboard.runs.models import Operation


class PolicyForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200, required=False)
    operation = forms.ChoiceField(
        label=_("Operation"), choices=[("", _("Any operation")), *Operation.choices], required=False
    )
    recipients_above = forms.CharField(
        required=False,
        label=_("Recipients above"),
        help_text=_("Holds when a request sends to more recipients than this (Altcraft files)."),
        widget=forms.TextInput(attrs={"inputmode": "numeric"}),
    )
    topics_above = forms.CharField(
        required=False,
        label=_("Topics above"),
        help_text=_("Holds when an event-generator trigger goes to more topics than this."),
        widget=forms.TextInput(attrs={"inputmode": "numeric"}),
    )
    audience_above = forms.CharField(
        required=False,
        label=_("Audience estimate above"),
        help_text=_("The audience Optimove last resolved for the same topics."),
        widget=forms.TextInput(attrs={"inputmode": "numeric"}),
    )
    outside_office_hours = forms.BooleanField(required=False, label=_("Outside office hours"))
    office_days = forms.MultipleChoiceField(
        label=_("Office days"),
        choices=[(str(day), name) for day, name in WEEKDAYS.items()],
        required=False,
        initial=list("12345"),
        widget=forms.CheckboxSelectMultiple,
    )
    office_start = forms.CharField(
        label=_("Office start"),
        required=False,
        initial="09:00",
        widget=forms.TextInput(attrs={"type": "time"}),
    )
    office_end = forms.CharField(
        label=_("Office end"),
        required=False,
        initial="18:00",
        widget=forms.TextInput(attrs={"type": "time"}),
    )
    office_zone = forms.CharField(required=False, initial="UTC", label=_("Office time zone"))
    match_all = forms.BooleanField(
        required=False, label=_("Only when all its conditions hold (otherwise: any of them)")
    )
    approvals_needed = forms.CharField(
        required=False,
        initial="1",
        label=_("Approvals needed (1 to 3 distinct operators, never the requester)"),
        widget=forms.TextInput(attrs={"inputmode": "numeric"}),
    )
    valid_minutes = forms.CharField(
        required=False,
        initial="240",
        label=_("The request expires after (minutes)"),
        widget=forms.TextInput(attrs={"inputmode": "numeric"}),
    )
