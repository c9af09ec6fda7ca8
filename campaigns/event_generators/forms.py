"""Forms of the event-generator pages: input checking and error display only. The context's own
inputs are built from the schema (campaigns.event_generators.schema), not from a Django form."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext, gettext_lazy

from campaigns.event_generators import schema as schemas
from campaigns.event_generators.services import parse_import, parse_topics


class SchemaField(forms.CharField):
    """A JSON Schema typed or pasted as text."""

    widget = forms.Textarea(attrs={"rows": 18, "spellcheck": "false", "class": "code"})

    def to_python(self, value: str | None) -> dict | None:
        value = (value or "").strip()
        if not value:
            return None
        try:
            return schemas.parse_schema_text(value)
        except ValidationError as error:
            raise ValidationError(error.messages) from None

    def prepare_value(self, value: object) -> str:
        if isinstance(value, dict):
            return json.dumps(value, indent=2, ensure_ascii=False)
        return super().prepare_value(value)


class TopicsField(forms.CharField):
    widget = forms.Textarea(attrs={"rows": 5, "spellcheck": "false", "class": "code"})

    def to_python(self, value: str | None) -> list[tuple[str, str]]:
        try:
            return parse_topics(value or "")
        except ValidationError as error:
            raise ValidationError(error.messages) from None

    def prepare_value(self, value: object) -> str:
        if isinstance(value, list):
            return "\n".join(f"{key} {name}" for key, name in value)
        return super().prepare_value(value)


class GeneratorForm(forms.Form):
    external_id = forms.CharField(
        label=gettext_lazy("Event Generator ID"),
        max_length=100,
        required=False,
        help_text=gettext_lazy(
            "The UUID from Optimove Personalize → Smart Campaigns (stable across edits)."
        ),
    )
    name = forms.CharField(max_length=120, required=False, label=gettext_lazy("Name"))
    description = forms.CharField(
        required=False,
        label=gettext_lazy("Description"),
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    connection = forms.ModelChoiceField(
        queryset=None, required=False, label=gettext_lazy("Connection")
    )
    topics = TopicsField(
        required=False,
        label=gettext_lazy("Topics"),
        help_text=gettext_lazy(
            "One topic per line: its key (a UUID) then its readable name, e.g. “6f1c…-… Arsenal”."
        ),
    )
    schema = SchemaField(
        required=False,
        label=gettext_lazy("Payload schema (JSON Schema draft 2020-12)"),
        help_text=gettext_lazy("The `context` object marketing's templates expect."),
    )
    comment = forms.CharField(
        max_length=300,
        required=False,
        label=gettext_lazy("Comment"),
        help_text=gettext_lazy("What changed (kept with the schema version)."),
    )
    import_file = forms.FileField(
        required=False,
        label=gettext_lazy("Or import a JSON file"),
        help_text=gettext_lazy(
            "An exported generator document or a bare JSON Schema; it fills the fields above."
        ),
    )

    def __init__(self, *args, connections=None, editing: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.editing = editing
        if editing:
            del self.fields["external_id"]
            del self.fields["connection"]
        else:
            self.fields["connection"].queryset = connections

    def clean(self) -> dict:
        cleaned = super().clean()
        upload = cleaned.get("import_file")
        if upload:
            if upload.size > schemas.MAX_SCHEMA_BYTES * 2:
                raise ValidationError({"import_file": gettext("The file is larger than 512 KB.")})
            try:
                imported = parse_import(upload.read())
            except ValidationError as error:
                messages = (
                    [m for ms in error.message_dict.values() for m in ms]
                    if hasattr(error, "error_dict")
                    else error.messages
                )
                raise ValidationError({"import_file": messages}) from None
            for key, value in imported.items():
                if key in self.fields:
                    cleaned[key] = value
        if not cleaned.get("schema") and "schema" not in self.errors:
            self.add_error("schema", gettext("A payload schema is required."))
        return cleaned


class TriggerForm(forms.Form):
    """The fixed part of the trigger form (the context's inputs come from the schema)."""

    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=40)
    topics = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, label=gettext_lazy("Topics")
    )
    all_topics = forms.BooleanField(
        required=False, label=gettext_lazy("All topics of this generator")
    )
    when = forms.ChoiceField(
        choices=[("now", gettext_lazy("Send now")), ("later", gettext_lazy("Schedule for later"))],
        initial="now",
        label=gettext_lazy("When"),
        widget=forms.RadioSelect,
    )
    fire_at = forms.DateTimeField(
        required=False,
        label=gettext_lazy("Send at (UTC)"),
        input_formats=[
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%d %H:%M",
            "%Y-%m-%d %H:%M:%S",
        ],
        widget=forms.DateTimeInput(
            attrs={"type": "datetime-local", "step": 1}, format="%Y-%m-%dT%H:%M:%S"
        ),
        help_text=gettext_lazy("In UTC; your local time is shown beside it."),
    )
    send_anyway = forms.BooleanField(required=False, widget=forms.HiddenInput)
    # The "schedule it for the next allowed time" button shown after a send-window refusal.
    at_next_allowed = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, topics=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["topics"].choices = [(topic.key, topic.name) for topic in topics]
        if not self.is_bound and not self.initial.get("idempotency_key"):
            self.initial["idempotency_key"] = new_idempotency_key()

    def clean_fire_at(self) -> datetime | None:
        value = self.cleaned_data.get("fire_at")
        # The input is labelled UTC, whatever the server's time zone.
        if value is not None:
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("when") == "later" and not cleaned.get("fire_at"):
            self.add_error("fire_at", gettext("Choose when to send it."))
        return cleaned

    def topic_keys(self, all_keys: list[str]) -> list[str]:
        if self.cleaned_data.get("all_topics"):
            return list(all_keys)
        return list(self.cleaned_data.get("topics") or [])


def new_idempotency_key() -> str:
    return uuid.uuid4().hex


class CampaignSettingsForm(forms.Form):
    approval_required = forms.BooleanField(
        required=False,
        label=gettext_lazy("Campaign runs need an operator's approval"),
        help_text=gettext_lazy(
            "Off by default: marketers' campaign triggers are sent at once. (The daily "
            "trigger keeps its own approval setting.)"
        ),
    )
