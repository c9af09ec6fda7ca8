"""The recurring schedule form: the rule, its zone and one target with what it sends."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from dashboard.models import Tenant
from dashboard.recurring.services import ScheduleInput
from dashboard.recurring.targets import all_targets

MATCHING_CHOICES = [
    ("", _("The campaign's default")),
    ("email", _("Email")),
    ("email_profile", _("Email (profile only)")),
    ("phone", _("Phone")),
    ("profile_id", _("Profile ID")),
]


class RecurringScheduleForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=120)
    cron = forms.CharField(
        label=_("Cron rule"),
        max_length=100,
        help_text=_(
            "Five fields: minute hour day month weekday. “0 9 * * 1-5” is every weekday at "
            "09:00; “30 8 1 * *” the first of every month at 08:30."
        ),
    )
    time_zone = forms.CharField(
        label=_("Time zone"),
        max_length=64,
        initial="Europe/Berlin",
        help_text=_("An IANA name, e.g. Europe/Berlin; the rule's times are local to it."),
    )
    target = forms.ChoiceField(label=_("What it fires"))
    topics = forms.CharField(
        label=_("Topics (event generator)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Topic keys, one a line or separated by commas."),
    )
    context = forms.CharField(
        label=_("Context (event generator, JSON)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    recipients = forms.CharField(
        label=_("Recipients (Altcraft, one a line)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_(
            "Kept encrypted with the schedule. When editing, leave empty to keep the list."
        ),
    )
    matching = forms.ChoiceField(
        label=_("Match recipients by (Altcraft)"), choices=MATCHING_CHOICES, required=False
    )
    wait_time_for_validation_seconds = forms.IntegerField(
        label=_("Extra validation wait (daily trigger, seconds)"),
        required=False,
        min_value=0,
        max_value=30,
    )
    files_uploaded_attested = forms.BooleanField(
        label=_("Daily trigger: I confirm that each day's files finish uploading before it fires"),
        required=False,
    )
    enabled = forms.BooleanField(label=_("Enabled"), required=False, initial=True)

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        groups: list[tuple[str, list[tuple[str, str]]]] = []
        for kind, target in sorted(all_targets().items()):
            options = [(f"{kind}:{pk}", name) for pk, name in target.choices(tenant=tenant)]
            if options:
                groups.append((str(target.label), options))
        self.fields["target"].choices = [("", _("Choose…")), *groups]

    def schedule_input(self) -> ScheduleInput:
        """The cleaned form as the service's input."""
        data = self.cleaned_data
        kind, _separator, target_id = data["target"].partition(":")
        return ScheduleInput(
            name=data["name"],
            cron=data["cron"],
            time_zone=data["time_zone"],
            target_kind=kind,
            target_input={
                "id": target_id,
                "topics": data["topics"],
                "context": data["context"],
                "recipients": data["recipients"],
                "matching": data["matching"],
                "wait_time_for_validation_seconds": data["wait_time_for_validation_seconds"],
                "files_uploaded_attested": data["files_uploaded_attested"],
            },
            enabled=data["enabled"],
        )
