"""Times on the pages: UTC as the product has always shown it, and the reader's own time beside
(`{{ moment|date:"Y-m-d H:i" }} UTC {{ moment|local_time }}`).

A builtin library (settings.TEMPLATES' "builtins"): every template has these filters.
"""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import formats
from django.utils.html import format_html
from django.utils.translation import gettext as _

from dashboard.preferences.selectors import person_time_zone

register = template.Library()


@register.filter(expects_localtime=False)
def local_time(value):
    """The reader's own time of `value`, to show beside its UTC time: in the zone they chose
    (their preferences), formatted for their language; without a choice, an empty element that
    static/js/app.js fills in with the browser's zone."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        return ""
    zone = person_time_zone()
    if zone is None:
        return format_html(
            '<span class="muted local-time" data-local-of="{}"></span>', value.isoformat()
        )
    local = value.astimezone(zone)
    return format_html(
        '<span class="muted local-time" title="{}">({} {})</span>',
        _("Your time zone: %(zone)s") % {"zone": zone.key},
        formats.date_format(local, "SHORT_DATETIME_FORMAT"),
        local.tzname(),
    )
