"""Forms of the Altcraft pages: input checking and error display; services decide and write."""

from __future__ import annotations

import uuid

from django import forms
from django.utils.translation import gettext, gettext_lazy

from campaigns.altcraft_launches.models import MATCHING_CHOICES, AltcraftTrigger
from campaigns.altcraft_launches.services import MAX_ALTCRAFT_ID, parse_json_object
from dashboard.models import Tenant, VendorConnection, VendorKind


def new_idempotency_key() -> str:
    return uuid.uuid4().hex


class TriggerRegisterForm(forms.Form):
    connection = forms.ModelChoiceField(
        queryset=VendorConnection.objects.none(), label=gettext_lazy("Connection")
    )
    trigger_id = forms.IntegerField(
        min_value=1, max_value=MAX_ALTCRAFT_ID, label=gettext_lazy("Trigger ID")
    )
    name = forms.CharField(max_length=200, label=gettext_lazy("Name"))
    default_matching = forms.ChoiceField(
        choices=MATCHING_CHOICES, initial="email", label=gettext_lazy("Default matching")
    )
    default_field_name = forms.CharField(
        max_length=120, required=False, label=gettext_lazy("Field name (custom matching)")
    )
    resource_id = forms.IntegerField(
        min_value=1,
        max_value=MAX_ALTCRAFT_ID,
        required=False,
        label=gettext_lazy("Resource ID (email/phone matching)"),
    )
    content_fields = forms.CharField(
        max_length=1000,
        required=False,
        label=gettext_lazy("Content fields"),
        help_text=gettext_lazy("Names its templates use as {apicontent.name}, comma-separated."),
    )

    def __init__(self, *args, tenant: Tenant, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["connection"].queryset = VendorConnection.objects.filter(
            tenant=tenant, kind=VendorKind.ALTCRAFT, is_active=True
        )

    def clean_content_fields(self) -> list[str]:
        return [name.strip() for name in self.cleaned_data["content_fields"].split(",") if name]


class SettingsForm(forms.Form):
    approval_required = forms.BooleanField(
        required=False, label=gettext_lazy("Launches need an operator to approve the exact file")
    )
    retention_hours = forms.IntegerField(
        min_value=1, max_value=90 * 24, label=gettext_lazy("Keep uploaded lists for (hours)")
    )


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, (list, tuple)):
            return [single(item, initial) for item in data if item]
        return [single(data, initial)] if data else []


class LaunchForm(forms.Form):
    """An upload (or a pasted list) and what to send with it."""

    idempotency_key = forms.CharField(max_length=80, widget=forms.HiddenInput)
    trigger = forms.ModelChoiceField(
        queryset=AltcraftTrigger.objects.none(), label=gettext_lazy("Trigger")
    )
    file = forms.FileField(
        required=False,
        label=gettext_lazy("CSV or XLSX file"),
        help_text=gettext_lazy("UTF-8, UTF-8 with BOM or cp1251."),
    )
    pasted = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 5}),
        label=gettext_lazy("…or paste the list (one value a line)"),
    )
    matching = forms.ChoiceField(
        choices=MATCHING_CHOICES, initial="email", label=gettext_lazy("Matching")
    )
    field_name = forms.CharField(
        max_length=120, required=False, label=gettext_lazy("Field name (custom)")
    )
    content = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "json"}),
        label=gettext_lazy("content (JSON object, {apicontent.name})"),
    )
    custom_data = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "class": "json"}),
        label=gettext_lazy("custom_data (JSON object)"),
    )
    attachments = MultipleFileField(
        required=False, label=gettext_lazy("Attachments (sent as data URIs)")
    )
    skip_triggers = forms.BooleanField(required=False, label=gettext_lazy("Skip triggers"))

    def __init__(self, *args, tenant: Tenant, **kwargs) -> None:
        kwargs.setdefault("initial", {}).setdefault("idempotency_key", new_idempotency_key())
        super().__init__(*args, **kwargs)
        self.fields["trigger"].queryset = AltcraftTrigger.objects.filter(tenant=tenant)

    def clean_content(self):
        return _json_object(self, "content")

    def clean_custom_data(self):
        return _json_object(self, "custom_data")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("matching") == "custom" and not cleaned.get("field_name"):
            trigger = cleaned.get("trigger")
            if trigger is None or not trigger.default_field_name:
                self.add_error(
                    "field_name", gettext("Custom matching needs the profile field name.")
                )
        return cleaned


class ImportForm(LaunchForm):
    skip_invalid_subscriptions = forms.BooleanField(
        required=False, label=gettext_lazy("Skip invalid subscriptions")
    )
    detect_geo = forms.BooleanField(required=False, label=gettext_lazy("Detect geo"))
    timeout_days = forms.IntegerField(
        min_value=0, required=False, label=gettext_lazy("Timeout: days")
    )
    timeout_hours = forms.IntegerField(min_value=0, required=False, label=gettext_lazy("hours"))
    timeout_minutes = forms.IntegerField(min_value=0, required=False, label=gettext_lazy("minutes"))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        del self.fields["pasted"]

    def timeout(self) -> dict[str, int] | None:
        parts = {
            unit: self.cleaned_data.get(f"timeout_{unit}") for unit in ("days", "hours", "minutes")
        }
        if all(value is None for value in parts.values()):
            return None
        return {unit: value or 0 for unit, value in parts.items()}


def _json_object(form: forms.Form, name: str):
    from django.core.exceptions import ValidationError

    try:
        return parse_json_object(form.cleaned_data.get(name) or "", name)
    except ValidationError as error:
        raise forms.ValidationError(error.message_dict[name]) from None


class HashForm(forms.Form):
    """Confirm/approve: bound to the SHA-256 of the file the person was shown."""

    sha256 = forms.CharField(max_length=64, widget=forms.HiddenInput)
    comment = forms.CharField(max_length=500, required=False)
    # Confirm: the uploader's "skip the rows with no value" when the preview found some.
    skip_empty = forms.BooleanField(required=False)


class ColumnForm(forms.Form):
    """The column of a bulk-launch file whose values are sent, and what they match."""

    column = forms.ChoiceField(
        widget=forms.RadioSelect,
        error_messages={"required": gettext_lazy("Choose the column whose values are sent.")},
    )
    matching = forms.ChoiceField(choices=MATCHING_CHOICES, label=gettext_lazy("Its values are"))
    field_name = forms.CharField(
        max_length=120, required=False, label=gettext_lazy("Profile field (custom matching)")
    )

    def __init__(self, *args, names: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["column"].choices = [(name, name) for name in names if name]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("matching") == "custom" and not cleaned.get("field_name"):
            self.add_error("field_name", gettext("Custom matching needs the profile field name."))
        return cleaned
