"""The chat webhooks settings form: new URLs (blank keeps the current one), removals, a reason."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _


class ChatWebhooksForm(forms.Form):
    slack_url = forms.CharField(
        max_length=1000,
        required=False,
        label=_("Slack-compatible incoming webhook URL"),
        help_text=_("Leave blank to keep the current one."),
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "size": 60}),
    )
    remove_slack = forms.BooleanField(required=False, label=_("Remove the Slack webhook"))
    teams_url = forms.CharField(
        max_length=1000,
        required=False,
        label=_("Microsoft Teams webhook URL"),
        help_text=_("Leave blank to keep the current one."),
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "size": 60}),
    )
    remove_teams = forms.BooleanField(required=False, label=_("Remove the Teams webhook"))
    reason = forms.CharField(
        max_length=500,
        label=_("Why"),
        error_messages={"required": _("Say why the chat webhooks change (it is audited).")},
        widget=forms.TextInput(attrs={"size": 60}),
    )

    def changes(self) -> dict[str, str | None]:
        """The services' arguments: a URL to set, "" to remove, None to keep."""
        changes: dict[str, str | None] = {}
        for kind in ("slack", "teams"):
            if self.cleaned_data[f"remove_{kind}"]:
                changes[f"{kind}_url"] = ""
            else:
                changes[f"{kind}_url"] = self.cleaned_data[f"{kind}_url"].strip() or None
        return changes

    def clean(self):
        cleaned = super().clean()
        if (
            self.is_bound
            and not self.errors
            and not any(value is not None for value in self.changes().values())
        ):
            raise forms.ValidationError(_("Nothing to change: give a Slack or a Teams URL."))
        return cleaned
