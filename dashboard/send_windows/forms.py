"""The connection page's send-window form: weekdays, start and end, zone, blackout dates, why."""

from __future__ import annotations

import zoneinfo
from functools import cache

from django import forms
from django.utils.translation import gettext_lazy as _

from dashboard.send_windows.rules import WEEKDAY_LABELS
from dashboard.send_windows.selectors import SendRules
from dashboard.send_windows.services import REASON_MAX_CHARS


@cache
def zone_choices() -> list[tuple[str, str]]:
    names = sorted(zoneinfo.available_timezones() - {"UTC"})
    return [("UTC", "UTC"), *((name, name) for name in names)]


class SendWindowForm(forms.Form):
    """Raw parts: the service checks them (one set of rules for the page, the API and the
    command) and its errors land on these fields."""

    any_time = forms.BooleanField(
        required=False,
        label=_("No window: any time"),
        help_text=_("Untick to send only on the weekdays and between the times below."),
    )
    weekdays = forms.MultipleChoiceField(
        label=_("Weekdays"),
        choices=[(str(number), name) for number, name in enumerate(WEEKDAY_LABELS)],
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )
    start = forms.CharField(
        required=False, label=_("From (local time)"), widget=forms.TimeInput(attrs={"type": "time"})
    )
    end = forms.CharField(
        required=False,
        label=_("Until (local time)"),
        widget=forms.TimeInput(attrs={"type": "time"}),
    )
    time_zone = forms.ChoiceField(choices=zone_choices, initial="UTC", label=_("Time zone"))
    blackouts = forms.CharField(
        required=False,
        label=_("Blackout dates"),
        help_text=_("One per line, a date and its reason: 2026-12-24 Christmas Eve"),
        widget=forms.Textarea(attrs={"rows": 4, "class": "code"}),
    )
    reason = forms.CharField(
        max_length=REASON_MAX_CHARS,
        label=_("Why this change"),
        error_messages={"required": _("Say why the send window changes.")},
    )

    @classmethod
    def for_rules(cls, found: SendRules) -> SendWindowForm:
        """The form filled with the connection's current rules."""
        window = found.window
        initial = {
            "any_time": window is None,
            "weekdays": [str(day) for day in sorted(window.weekdays)]
            if window
            else ["0", "1", "2", "3", "4"],
            "start": f"{window.start:%H:%M}" if window else "08:00",
            "end": f"{window.end:%H:%M}" if window else "21:00",
            "time_zone": window.zone if window else "UTC",
            "blackouts": "\n".join(
                f"{day:%Y-%m-%d} {reason}".strip()
                for day, reason in sorted(found.blackouts.items())
            ),
        }
        return cls(initial=initial)
