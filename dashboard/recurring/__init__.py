"""Recurring schedules: cron rules in a time zone that fire a feature app's target (an event
generator's trigger, an Altcraft launch of a stored list, the daily trigger), exactly once per
fire time, with every fire (sent, skipped and why, failed) recorded; and the tenant's calendar
of upcoming fires beside its blackout dates and pauses."""
