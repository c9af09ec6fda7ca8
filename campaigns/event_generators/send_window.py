"""An event generator's own send window, on top of its connection's: e.g. match alerts only
between 10:00 and 23:00 in the league's zone. Checked with the same rule as the connection's
(dashboard.send_windows): a trigger outside it is refused with the next time both allow, and the
engine's dispatcher holds the generator's queued runs until then (hold_generator_runs, plugged
in as AppConfig.send_holds)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext

from campaigns.event_generators.models import EventGenerator
from dashboard.audit.trail import Actor, record_audit_event
from dashboard.clock import utc_now
from dashboard.runs.models import Operation, Run
from dashboard.runs.states import RunState
from dashboard.send_windows import rules
from dashboard.send_windows.selectors import SendRules, next_allowed_for_all, send_rules_for
from dashboard.send_windows.services import (
    REASON_MAX_CHARS,
    OutsideSendWindow,
    WindowInput,
    check_may_change,
    clean_window,
    release_held_runs,
    rules_summary,
)


def generator_window(generator: EventGenerator) -> rules.Window | None:
    """The generator's own window, None for none."""
    data = generator.send_window
    if not data:
        return None
    return clean_window(
        WindowInput(data["weekdays"], data["start"], data["end"], data.get("time_zone", "UTC"))
    )


def generator_rules(generator: EventGenerator) -> SendRules:
    """The generator's own window as rules (no blackout dates: those are its connection's)."""
    return SendRules(
        connection_name=gettext("event generator %(name)s") % {"name": generator.name},
        window=generator_window(generator),
    )


def next_allowed_for_generator(generator: EventGenerator, at: datetime) -> datetime | None:
    """The first instant at or after `at` that both the generator's and its connection's rules
    allow."""
    connection = send_rules_for(
        connection_id=generator.connection_id, connection_name=generator.connection.name
    )
    return next_allowed_for_all([connection, generator_rules(generator)], at)


def check_generator_window(*, generator: EventGenerator, at: datetime | None = None) -> None:
    """Refuse a trigger outside the generator's own window: OutsideSendWindow, with the next
    time both it and its connection allow (the connection's own check comes first)."""
    at = at or utc_now()
    found = generator_rules(generator)
    if found.is_set and not found.is_allowed(at):
        raise OutsideSendWindow(found, next_allowed_for_generator(generator, at))


def generator_window_set(
    *, actor: Actor, generator: EventGenerator, window: WindowInput | None, reason: str
) -> SendRules:
    """Set the generator's own window (None: only its connection's applies), by an operator or
    admin with a reason; audited as generator.send_window_changed with before and after. The
    runs the old window held become due again (the dispatcher holds any the new one holds)."""
    check_may_change(actor, generator.tenant)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(
            {"reason": gettext("Say why the send window changes.")}, code="required"
        )
    if len(reason) > REASON_MAX_CHARS:
        raise ValidationError(
            {
                "reason": gettext("Keep the reason to %(maximum)s characters.")
                % {"maximum": REASON_MAX_CHARS}
            },
            code="max_length",
        )
    cleaned = clean_window(window) if window is not None else None
    now = utc_now()
    with transaction.atomic():
        locked = EventGenerator.objects.select_for_update().get(pk=generator.pk)
        before = generator_rules(locked)
        generator.send_window = (
            None
            if cleaned is None
            else {
                "weekdays": sorted(cleaned.weekdays),
                "start": f"{cleaned.start:%H:%M}",
                "end": f"{cleaned.end:%H:%M}",
                "time_zone": cleaned.zone,
            }
        )
        EventGenerator.objects.filter(pk=generator.pk).update(send_window=generator.send_window)
        after = generator_rules(generator)
        released = 0
        if before.is_set and not before.is_allowed(now):
            until = before.next_allowed(now)
            if until != after.next_allowed(now) or not after.is_set:
                released = release_held_runs(_runs_of(generator), until, now)
        record_audit_event(
            actor=actor,
            tenant=generator.tenant,
            action="generator.send_window_changed",
            object_type="event_generator",
            object_id=generator.pk,
            summary={
                "generator": generator.external_id,
                "reason": reason,
                "from": rules_summary(before),
                "to": rules_summary(after),
                "released": released,
            },
        )
    return after


def _runs_of(generator: EventGenerator) -> Any:
    return Run.objects.filter(
        connection_id=generator.connection_id,
        parameters__event_generator_id=generator.external_id,
    )


def hold_generator_runs(*, connection_id: int, operation: str, now: datetime) -> None:
    """The engine's hook (AppConfig.send_holds): the queued runs of this connection's
    generators whose own window is closed now become due at its next opening, so the
    dispatcher's claim skips them. One query when no generator of it has a window; none for
    another operation.

    Called before any run lock is taken. A closed window is read again under the generator's
    row lock, the one generator_window_set holds while it releases the runs its old window
    held: a dispatcher that read the old window would otherwise hold them again."""
    if operation != Operation.OPTIMOVE_RUN_EVENT_GENERATOR:
        return  # no other operation's runs name a generator: spare a click's send the read
    for generator in EventGenerator.objects.filter(
        connection_id=connection_id, send_window__isnull=False
    ):
        found = generator_rules(generator)
        if not found.is_set or found.is_allowed(now):
            continue
        with transaction.atomic():
            locked = (
                EventGenerator.objects.select_for_update(no_key=True)
                .filter(pk=generator.pk)
                .first()
            )
            found = generator_rules(locked) if locked is not None else None
            if found is None or not found.is_set or found.is_allowed(now):
                continue
            until = found.next_allowed(now)
            if until is None:
                continue
            _runs_of(locked).filter(operation=operation, state=RunState.QUEUED).filter(
                Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=until)
            ).update(next_attempt_at=until)
