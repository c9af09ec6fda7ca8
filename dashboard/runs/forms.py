"""Forms of the run pages: the list's filters and the actions' input. Input checking only; the
engine's services decide whether an action is allowed."""

from __future__ import annotations

import functools
from typing import Any

from django import forms
from django.forms.utils import flatatt
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext, gettext_lazy, pgettext_lazy

from dashboard.models import Tenant
from dashboard.runs import selectors
from dashboard.runs.models import Operation
from dashboard.runs.selectors import RunFilters
from dashboard.runs.states import RunState


class PlainSelect(forms.Select):
    """A select whose markup is built in Python, the same as Django's template gives: the widget
    templates render each option through a template of its own, a few milliseconds for the run
    list's five filters, which every view of the list (a live page) pays."""

    def render(self, name, value, attrs=None, renderer=None) -> SafeString:
        widget = self.get_context(name, value, attrs)["widget"]
        options = format_html_join(
            "",
            '<option value="{}"{}>{}</option>',
            (
                (option["value"], flatatt(option["attrs"]), option["label"])
                for _group, group_options, _index in widget["optgroups"]
                for option in group_options
            ),
        )
        return format_html(
            '<select name="{}"{}>{}</select>', widget["name"], flatatt(widget["attrs"]), options
        )


class RunFilterForm(forms.Form):
    state = forms.ChoiceField(
        choices=[("", gettext_lazy("Any state")), *RunState.choices],
        required=False,
        widget=PlainSelect,
    )
    operation = forms.ChoiceField(
        choices=[("", gettext_lazy("Any operation")), *Operation.choices],
        required=False,
        widget=PlainSelect,
    )
    connection = forms.ModelChoiceField(
        queryset=None,
        required=False,
        empty_label=gettext_lazy("Any connection"),
        widget=PlainSelect,
    )
    requester = forms.ModelChoiceField(
        queryset=None, required=False, empty_label=gettext_lazy("Anyone"), widget=PlainSelect
    )
    approver = forms.ModelChoiceField(
        queryset=None,
        required=False,
        empty_label=gettext_lazy("Anyone"),
        label=gettext_lazy("Decided by"),
        widget=PlainSelect,
    )
    created_from = forms.DateField(
        required=False,
        label=pgettext_lazy("start of a date range", "From"),
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    created_to = forms.DateField(
        required=False,
        label=pgettext_lazy("end of a date range", "To"),
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    vendor_reference = forms.CharField(
        required=False,
        max_length=120,
        label=gettext_lazy("Vendor id"),
        strip=True,
        widget=forms.TextInput(
            attrs={
                "placeholder": gettext_lazy("execution / task / job id or run #"),
                "type": "search",
            }
        ),
    )

    FIELDS = (
        "state",
        "operation",
        "connection",
        "requester",
        "approver",
        "created_from",
        "created_to",
        "vendor_reference",
    )

    def __init__(self, *args, tenant: Tenant, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Only this tenant's connections and people: another tenant's id is "not one of the
        # choices", never a match.
        connections = selectors.run_connection_choices(tenant=tenant)
        people = selectors.run_requester_choices(tenant=tenant)
        self.fields["connection"].queryset = connections
        self.fields["requester"].queryset = self.fields["approver"].queryset = people
        # The options are read once, as plain lists, and only when the form is shown (a live
        # fragment never shows it): each select iterating its own queryset read the people
        # twice, each time through a server-side cursor (three round trips). The querysets
        # still check a submitted value.

        @functools.cache
        def connection_choices() -> list[tuple[Any, str]]:
            return [("", gettext("Any connection")), *connections.values_list("pk", "name")]

        @functools.cache
        def people_choices() -> list[tuple[Any, str]]:
            return [("", gettext("Anyone")), *people.values_list("pk", "username")]

        self.fields["connection"].choices = connection_choices
        for name in ("requester", "approver"):
            self.fields[name].choices = people_choices

    def clean_vendor_reference(self) -> str:
        value = self.cleaned_data.get("vendor_reference", "")
        # PostgreSQL refuses NUL in text: strip it (and other control characters) cleanly.
        return "".join(char for char in value if char.isprintable())

    def filters(self) -> RunFilters:
        """The valid filters; a bad value is shown as an error and ignored, never a 500."""
        self.is_valid()
        cleaned = getattr(self, "cleaned_data", {})
        return {
            field: cleaned[field] for field in self.FIELDS if cleaned.get(field) not in (None, "")
        }


class ApproveForm(forms.Form):
    # The hash of the parameters the approver was shown: the engine refuses the approval when
    # they changed since, so nobody approves something they did not see.
    parameters_hash = forms.CharField(max_length=64, widget=forms.HiddenInput)
    comment = forms.CharField(
        max_length=500,
        required=False,
        widget=forms.TextInput(
            attrs={"placeholder": gettext_lazy("Comment (optional)"), "size": 50}
        ),
    )


class RejectForm(forms.Form):
    comment = forms.CharField(
        max_length=500,
        label=gettext_lazy("Why not?"),
        error_messages={
            "required": gettext_lazy("Say why you reject it, so the requester knows what to fix.")
        },
        widget=forms.TextInput(
            attrs={"placeholder": gettext_lazy("Reason (the requester sees it)"), "size": 50}
        ),
    )


class PersonDecisionForm(forms.Form):
    """Mark as sent / Send again: the evidence in writing, and an explicit confirmation."""

    comment = forms.CharField(
        max_length=2000,
        label=gettext_lazy("Evidence"),
        error_messages={
            "required": gettext_lazy(
                "Write down what you checked in the vendor's system and what it showed."
            )
        },
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    confirm = forms.BooleanField(
        error_messages={
            "required": gettext_lazy("Tick the box to confirm you checked with the vendor.")
        },
    )
