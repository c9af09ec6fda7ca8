"""English as TriggerDesk writes it: ISO dates and a 24-hour clock, like every UTC time of the
pages (Django's English default is "12/07/2026 5:53 a.m.")."""

SHORT_DATETIME_FORMAT = "Y-m-d H:i"
