"""Reads of the run engine, always scoped to one tenant."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypedDict

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db.models import (
    Avg,
    CharField,
    Count,
    DateTimeField,
    Exists,
    F,
    FloatField,
    IntegerField,
    JSONField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Value,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, TruncDate
from django.http import Http404
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext, ngettext

from dashboard.clock import utc_now
from dashboard.models import (
    ROLE_PERMISSIONS,
    AuditEvent,
    Membership,
    Permission,
    Tenant,
    VendorConnection,
)
from dashboard.runs.heartbeat import HEARTBEAT_TTL_SECONDS
from dashboard.runs.models import OPERATION_LABELS, STATE_LABELS, Approval, Run, RunAttempt
from dashboard.runs.operations import operation_for
from dashboard.runs.states import ACTIVE_STATES, STALE_QUEUED_SECONDS, RunState
from dashboard.tenancy import history


class RunFilters(TypedDict, total=False):
    """What the run list can be narrowed by; a missing or empty value means "any"."""

    state: str
    operation: str
    connection: VendorConnection | None
    requester: AbstractBaseUser | None
    approver: AbstractBaseUser | None
    created_from: date  # inclusive, UTC
    created_to: date  # inclusive, UTC
    vendor_reference: str  # an execution / task / batch job id, or a run number


def run_list(*, tenant: Tenant, filters: RunFilters | None = None) -> QuerySet[Run]:
    """The tenant's runs, newest first, with what the list shows fetched in a fixed number of
    queries (connection, requester and every approval decision).

    Every filter is served by an index on (tenant, filter, created_at, id) (see Run.Meta), so a
    page of it, however deep, reads a page of index entries: paginate with dashboard.tenancy.history.
    """
    runs = (
        run_filter(tenant=tenant, filters=filters)
        .select_related("connection", "requested_by")
        .prefetch_related(
            Prefetch(
                "approvals",
                queryset=Approval.objects.select_related("decided_by").order_by("decided_at"),
            )
        )
    )
    return runs.order_by("-created_at", "-id")


@dataclass(frozen=True)
class DecisionLine:
    """One approval decision as the run list prints it: "Approved by alice"."""

    decision: str
    label: str
    username: str


# What the run list shows of a run (and what `is_open`, the cursor and `run_description` read):
# the rest of a run's columns (its result, snapshot hash, attestation...) would cost a model
# field conversion each, for 50 rows a page.
RUN_LIST_FIELDS = (
    "id",
    "created_at",
    "operation",
    "title",
    "connection_name",
    "parameters",
    "state",
    "needs_person",
    "failure_code",
    "failure_message",
    "requested_by_label",
    "requested_at",
    "approval_required",
    "vendor_status",
    "progress",
    "audience_size",
    "requested_by__username",
)
DECISION_LABELS = dict(Approval._meta.get_field("decision").flatchoices)


def run_history_page(
    *,
    tenant: Tenant,
    filters: RunFilters | None = None,
    cursor: history.Cursor | None = None,
    size: int = history.PAGE_SIZE,
) -> history.KeysetPage[Run]:
    """One keyset page of the run history (see `run_list`), ready to show: each run with its
    title and connection's name as they were when it was requested, its requester (only the
    columns the list shows), its approval decisions oldest first as `run.decisions`
    (DecisionLine), and what the list prints as plain attributes (`description`, the ids'
    line, `operation_label`, `state_label`, `requester_text`, `requested_at_text`).

    Two queries however deep the page. The decisions come from one query over the page's ids
    rather than prefetch_related, which builds a filtered queryset per run: a third of a
    millisecond each, most of a 50-row page's Python time.
    """
    rows = (
        run_filter(tenant=tenant, filters=filters)
        .select_related("requested_by")
        .only(*RUN_LIST_FIELDS)
    )
    page = history.keyset_page(rows, cursor=cursor, size=size)
    decisions: dict[int, list[DecisionLine]] = {run.pk: [] for run in page}
    if decisions:
        for run_id, decision, username in (
            Approval.objects.filter(run_id__in=list(decisions))
            .order_by("decided_at", "id")
            .values_list("run_id", "decision", "decided_by__username")
        ):
            decisions[run_id].append(
                DecisionLine(decision, DECISION_LABELS.get(decision, decision), username)
            )
    for run in page:
        run.decisions = decisions[run.pk]
        run.description = run_description(run)
        run.operation_label = OPERATION_LABELS.get(run.operation, run.operation)
        run.state_label = STATE_LABELS.get(run.state, run.state)
        run.requester_text = run.requested_by_label or (
            run.requested_by.username if run.requested_by else "—"
        )
        # What the template's date filter printed, without its per-call locale lookups.
        requested_at = timezone.localtime(run.requested_at or run.created_at)
        run.requested_at_text = requested_at.strftime("%Y-%m-%d %H:%M:%S")
    return page


def run_filter(*, tenant: Tenant, filters: RunFilters | None = None) -> QuerySet[Run]:
    """The tenant's runs narrowed by `filters` (no ordering, no related rows): the shared core of
    the list, its estimated total and its CSV export."""
    filters = filters or {}
    runs = Run.objects.filter(tenant=tenant)
    if filters.get("state"):
        runs = runs.filter(state=filters["state"])
    if filters.get("operation"):
        runs = runs.filter(operation=filters["operation"])
    if filters.get("connection") is not None:
        # Filtering on the pair keeps another tenant's connection from matching anything.
        runs = runs.filter(connection=filters["connection"], connection__tenant=tenant)
    if filters.get("requester") is not None:
        runs = runs.filter(requested_by=filters["requester"])
    if filters.get("approver") is not None:
        runs = runs.filter(
            Exists(Approval.objects.filter(run=OuterRef("pk"), decided_by=filters["approver"]))
        )
    if filters.get("created_from"):
        runs = runs.filter(created_at__gte=_utc_midnight(filters["created_from"]))
    if filters.get("created_to"):
        runs = runs.filter(created_at__lt=_utc_midnight(filters["created_to"] + timedelta(days=1)))
    if filters.get("vendor_reference"):
        reference = filters["vendor_reference"]
        match = Q(vendor_reference=reference)
        if reference.lstrip("#").isdigit() and len(reference) < 18:
            match |= Q(pk=int(reference.lstrip("#")))
        runs = runs.filter(match)
    return runs


def _utc_midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def run_status_get(*, tenant: Tenant, run_id: int) -> Run:
    """One run of the tenant, its own row only (one query): what its live status block shows;
    404 for any other tenant's run."""
    try:
        return Run.objects.get(tenant=tenant, pk=run_id)
    except Run.DoesNotExist:
        raise Http404(gettext("No such run.")) from None


def run_get(*, tenant: Tenant, run_id: int) -> Run:
    """One run of the tenant with its approvals and attempts; 404 for any other tenant's run."""
    try:
        return (
            Run.objects.select_related("tenant", "connection", "requested_by", "duplicate_of")
            .prefetch_related(
                Prefetch(
                    "approvals",
                    queryset=Approval.objects.select_related("decided_by").order_by(
                        "decided_at", "id"
                    ),
                ),
                Prefetch("attempts", queryset=RunAttempt.objects.order_by("number")),
            )
            .get(tenant=tenant, pk=run_id)
        )
    except Run.DoesNotExist:
        raise Http404(gettext("No such run.")) from None


# The columns a run's live block shows of its attempts and of its timeline, in UNION order.
_ATTEMPT_COLUMNS = ("number", "purpose", "started_at", "latency_ms", "status_code")
_ATTEMPT_COLUMNS += ("failure_code", "outcome")
_EVENT_COLUMNS = ("created_at", "actor_label", "action", "summary")


def run_attempts_and_timeline(*, run: Run) -> tuple[list[RunAttempt], list[AuditEvent]]:
    """The run's attempts in number order and its timeline (run_timeline), in one query: a UNION
    of the two with the columns a status block shows (the attempts' stored exchanges are left
    out). A block polled every second pays one round trip for both instead of two. The rows
    are for showing, not for saving."""
    none = {
        "int": Value(None, output_field=IntegerField()),
        "float": Value(None, output_field=FloatField()),
        "text": Value("", output_field=CharField()),
        "time": Value(None, output_field=DateTimeField()),
        "json": Value(None, output_field=JSONField()),
    }
    attempts = RunAttempt.objects.filter(run=run).annotate(
        c_kind=Value("attempt", output_field=CharField()),
        c_id=F("id"),
        c_number=F("number"),
        c_purpose=F("purpose"),
        c_at=F("started_at"),
        c_latency_ms=F("latency_ms"),
        c_status_code=Cast("status_code", IntegerField()),
        c_failure_code=F("failure_code"),
        c_outcome=F("outcome"),
        c_actor_label=none["text"],
        c_action=none["text"],
        c_summary=none["json"],
    )
    events = run_timeline(run=run).annotate(
        c_kind=Value("event", output_field=CharField()),
        c_id=F("id"),
        c_number=none["int"],
        c_purpose=none["text"],
        c_at=F("created_at"),
        c_latency_ms=none["float"],
        c_status_code=none["int"],
        c_failure_code=none["text"],
        c_outcome=none["text"],
        c_actor_label=F("actor_label"),
        c_action=F("action"),
        c_summary=F("summary"),
    )
    columns = [name for name in attempts.query.annotations if name.startswith("c_")]
    # Sorted below: the union itself is left unordered (no model's default ordering applies).
    rows = (
        attempts.order_by()
        .values_list(*columns)
        .union(events.order_by().values_list(*columns), all=True)
        .order_by()
    )
    found_attempts, found_events = [], []
    for row in rows:
        values = dict(zip((name.removeprefix("c_") for name in columns), row, strict=True))
        if values["kind"] == "attempt":
            found_attempts.append(
                RunAttempt(
                    id=values["id"],
                    run=run,
                    number=values["number"],
                    purpose=values["purpose"],
                    started_at=values["at"],
                    latency_ms=values["latency_ms"],
                    status_code=values["status_code"],
                    failure_code=values["failure_code"],
                    outcome=values["outcome"],
                )
            )
        else:
            summary = values["summary"]
            found_events.append(
                AuditEvent(
                    id=values["id"],
                    created_at=values["at"],
                    actor_label=values["actor_label"],
                    action=values["action"],
                    summary=json.loads(summary) if isinstance(summary, str) else summary,
                )
            )
    found_attempts.sort(key=lambda attempt: attempt.number)
    found_events.sort(key=lambda event: (event.created_at, event.pk))
    return found_attempts, found_events


def run_timeline(*, run: Run) -> QuerySet[AuditEvent]:
    """The run's audit events in the order they happened: who moved it where, when and why."""
    return AuditEvent.objects.filter(
        tenant_id=run.tenant_id, object_type="run", object_id=str(run.pk)
    ).order_by("created_at", "id")


def run_names(*, tenant: Tenant, run_ids: Iterable[str | int]) -> dict[str, str]:
    """The titles of the tenant's runs among `run_ids` (as they were when requested), by id as
    text (an audit row's object_id): one query for a page of rows that point at runs."""
    ids = {int(run_id) for run_id in run_ids if str(run_id).isdigit()}
    if not ids:
        return {}
    return {
        str(run_id): title or OPERATION_LABELS.get(operation, operation)
        for run_id, title, operation in Run.objects.filter(tenant=tenant, pk__in=ids).values_list(
            "pk", "title", "operation"
        )
    }


def run_description(run: Run) -> str:
    """The operation's one-line description of the run's parameters.

    A history page must still render when an operation was renamed or its parameters' shape
    changed since the run was recorded, so any failure falls back to the operation's label.
    """
    try:
        return operation_for(run.operation).describe(run.parameters)
    except Exception:
        return run.get_operation_display() or run.operation


def run_requester_choices(*, tenant: Tenant) -> QuerySet[Any]:
    """Users the run list can be filtered by (requester or approver): the tenant's members, and
    former members (a requester who has since left is still in the history).

    From the memberships and the audit trail's "member.removed" rows (index
    audit_tenant_action), never from the runs table: a "who ever requested a run" subquery reads
    every run of the tenant on every page view.
    """
    former = (
        AuditEvent.objects.filter(tenant=tenant, action="member.removed")
        .annotate(username=KeyTextTransform("user", "summary"))
        .values("username")
    )
    return (
        get_user_model()
        .objects.filter(Q(memberships__tenant=tenant) | Q(username__in=former))
        .distinct()
        .order_by("username")
    )


def run_connection_choices(*, tenant: Tenant) -> QuerySet[VendorConnection]:
    """The tenant's connections, for the run list's filter."""
    return VendorConnection.objects.filter(tenant=tenant).order_by("name")


# The navigation's badge says "99+" beyond this: a count that stops here costs the same with a
# hundred thousand requests waiting (a tenant whose approvers left) as with three.
APPROVALS_BADGE_CAP = 99


def approvals_waiting_count(*, tenant: Tenant, user: AbstractBaseUser) -> int:
    """How many of the tenant's requests `user` could approve (the navigation's badge), counted
    up to APPROVALS_BADGE_CAP + 1: one index-only COUNT over at most that many entries of the
    partial index of waiting requests (run_awaiting_approval)."""
    waiting = approvals_waiting_for(tenant=tenant, user=user).order_by().values("pk")
    return waiting[: APPROVALS_BADGE_CAP + 1].count()


def run_rejection(run: Run) -> Approval | None:
    """The rejection that cancelled a request, if one did (uses prefetched approvals)."""
    for approval in run.approvals.all():
        if approval.decision == Approval.Decision.REJECTED:
            return approval
    return None


def runs_needing_attention(*, tenant: Tenant) -> QuerySet[Run]:
    """Runs a person must act on: requests awaiting approval, and unknown outcomes that
    automatic reconciliation could not settle."""
    return (
        Run.objects.filter(tenant=tenant)
        .filter(
            Q(state=RunState.AWAITING_APPROVAL)
            | Q(state=RunState.OUTCOME_UNKNOWN, needs_person=True)
        )
        .select_related("connection", "requested_by")
        .order_by("created_at")
    )


# -- what a run is waiting for ----------------------------------------------------------------


@dataclass(frozen=True)
class RunWait:
    """What an open run is waiting for, until when, and what happens then (the run page's
    countdown: rendered on the server with the deadline, refreshed by the live fragment)."""

    what: str
    until: datetime
    then: str
    now: datetime

    @property
    def seconds_left(self) -> float:
        return (self.until - self.now).total_seconds()

    @property
    def countdown(self) -> str:
        left = self.seconds_left
        if left >= 0:
            return gettext("in %(duration)s") % {"duration": format_duration(left)}
        return gettext("%(duration)s overdue") % {"duration": format_duration(-left)}


def format_duration(seconds: float) -> str:
    """'2 h 05 min', '7 min 12 s', '40 s': how long, for people."""
    seconds = max(0, math.ceil(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return gettext("%(hours)s h %(minutes)02d min") % {"hours": hours, "minutes": minutes}
    if minutes:
        return gettext("%(minutes)s min %(seconds)02d s") % {"minutes": minutes, "seconds": seconds}
    return gettext("%(seconds)s s") % {"seconds": seconds}


def run_wait(run: Run, *, now: datetime | None = None) -> RunWait | None:
    """What `run` is waiting for now, or None when nothing (a terminal run, or a person)."""
    now = now or utc_now()
    operation = operation_for(run.operation)
    if run.state == RunState.AWAITING_APPROVAL and run.approval_expires_at:
        return RunWait(
            gettext("an operator's approval")
            if run.approvals_needed <= 1
            else gettext("the approvals of %(count)s operators") % {"count": run.approvals_needed},
            run.approval_expires_at,
            gettext("Then the request expires and nothing is sent."),
            now,
        )
    if run.state == RunState.QUEUED:
        if run.next_attempt_at and run.next_attempt_at > now:
            return RunWait(
                gettext("the next send attempt"),
                run.next_attempt_at,
                gettext("Then a worker sends it."),
                now,
            )
        return RunWait(
            gettext("a worker to send it"),
            run.updated_at + timedelta(seconds=STALE_QUEUED_SECONDS),
            gettext("If none has by then, the sweeper queues it again (it has not been sent)."),
            now,
        )
    if run.state == RunState.SENDING:
        return RunWait(
            gettext("the vendor's answer"),
            run.updated_at + timedelta(seconds=operation.max_send_seconds),
            gettext(
                "If no answer is recorded by then, or about %(duration)s after its worker stops, "
                "the outcome becomes unknown: TriggerDesk never sends it blindly again."
            )
            % {"duration": format_duration(HEARTBEAT_TTL_SECONDS)},
            now,
        )
    if run.state == RunState.ACCEPTED and run.next_poll_at:
        then = gettext("Then TriggerDesk reads its status.")
        if run.poll_deadline:
            then += " " + gettext("TriggerDesk keeps asking until %(when)s UTC.") % {
                "when": format(run.poll_deadline, "%Y-%m-%d %H:%M:%S")
            }
        return RunWait(gettext("the vendor to finish"), run.next_poll_at, then, now)
    if run.state == RunState.OUTCOME_UNKNOWN and not run.needs_person and run.reconcile_after:
        return RunWait(
            gettext("the automatic re-check"),
            run.reconcile_after,
            operation.reconcile_plan,
            now,
        )
    return None


# -- the home dashboard -------------------------------------------------------------------------

CHART_DAYS = 30
# The charts are 30-day aggregates: five minutes old is fresh enough, and it keeps a busy tenant's
# overview from aggregating tens of thousands of rows on every visit.
CHART_CACHE_SECONDS = 300


def runs_in_progress(*, tenant: Tenant) -> QuerySet[Run]:
    """Runs a worker is busy with (queued, sending, accepted): few, from the partial index
    run_tenant_unfinished."""
    return (
        Run.objects.filter(tenant=tenant, state__in=sorted(ACTIVE_STATES))
        .select_related("connection")
        .order_by("-created_at", "-id")
    )


def approvals_waiting_for(*, tenant: Tenant, user: AbstractBaseUser) -> QuerySet[Run]:
    """Requests this person could approve: awaiting approval and not their own (four eyes)."""
    return (
        Run.objects.filter(tenant=tenant, state=RunState.AWAITING_APPROVAL)
        .exclude(requested_by=user)
        .select_related("connection")
        .order_by("created_at", "id")
    )


def recent_failures(*, tenant: Tenant, days: int = 7) -> QuerySet[Run]:
    """Failed runs of the last `days` days, newest first (index run_tenant_state)."""
    since = utc_now() - timedelta(days=days)
    return (
        Run.objects.filter(tenant=tenant, state=RunState.FAILED, created_at__gte=since)
        .select_related("connection")
        .order_by("-created_at", "-id")
    )


def run_activity_by_day(*, tenant: Tenant, days: int = CHART_DAYS) -> dict[str, Any]:
    """Runs per UTC day and state over the last `days` days, per vendor connection kind too.

    One GROUP BY over the index range (tenant, created_at) of those days; cached for a few
    minutes per tenant.
    """
    key = f"run_activity:{tenant.pk}:{days}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    since = datetime.combine(utc_now().date() - timedelta(days=days - 1), time.min, tzinfo=UTC)
    rows = (
        Run.objects.filter(tenant=tenant, created_at__gte=since)
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day", "state", "connection__kind")
        .annotate(count=Count("id"))
        .order_by()
    )
    result = {"since": since.date(), "days": days, "rows": list(rows)}
    cache.set(key, result, CHART_CACHE_SECONDS)
    return result


def vendor_health(*, tenant: Tenant, days: int = CHART_DAYS) -> list[dict[str, Any]]:
    """Per vendor connection over the last `days` days: send attempts, median-ish (average)
    latency, and the share that failed (the vendor refused, errored or did not answer)."""
    key = f"vendor_health:{tenant.pk}:{days}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    since = utc_now() - timedelta(days=days)
    rows = list(
        RunAttempt.objects.filter(
            run__tenant=tenant,
            run__created_at__gte=since,
            purpose=RunAttempt.Purpose.SEND,
        )
        .values("run__connection__name", "run__connection__kind")
        .annotate(
            attempts=Count("id"),
            failures=Count("id", filter=~Q(failure_class="")),
            latency_ms=Avg("latency_ms"),
        )
        .order_by("run__connection__name")
    )
    for row in rows:
        row["error_rate"] = row["failures"] / row["attempts"] if row["attempts"] else 0.0
    cache.set(key, rows, CHART_CACHE_SECONDS)
    return rows


@dataclass(frozen=True)
class Outcome:
    """What a run, trigger group, launch or schedule came to, in the words every page, the API
    and the CSV use: `word` the state ("Sent", "Partly failed"), `tone` its badge class (good,
    warn, bad, or "" when nothing is decided yet), `detail` what the vendor's answer says about it
    ("sent; 0 of 5,000 matched a profile", a failure's reason)."""

    word: str
    tone: str = ""
    detail: str = ""

    @property
    def text(self) -> str:
        """The word and its detail in one line, for the CSV and notifications."""
        return f"{self.word}: {self.detail}" if self.detail else self.word


def count_text(number: int) -> str:
    """A count as pages show it, with thousands separators: 5000 -> "5,000"."""
    return number_format(number, force_grouping=True)


def count_noun(number: int, singular: str, plural: str = "") -> str:
    """A count and its noun, as pages show them: "1 request", "5,000 requests"."""
    return f"{count_text(number)} {singular if number == 1 else plural or singular + 's'}"


_RUN_TONES = {
    RunState.SUCCEEDED: "good",
    RunState.FAILED: "bad",
    RunState.OUTCOME_UNKNOWN: "warn",
}


def run_outcome(run: Run) -> Outcome:
    """A run's state in the shared words: failed with the vendor's reason, an unknown outcome
    that waits for a person in red, a success whose vendor reached nobody as a warning."""
    return outcome_of_run_values(
        state=run.state,
        needs_person=run.needs_person,
        audience_size=run.audience_size,
        failure_message=run.failure_message,
    )


def outcome_of_run_values(
    *,
    state: str,
    needs_person: bool,
    audience_size: int | None,
    failure_message: str,
    words: RunOutcomeWords | None = None,
) -> Outcome:
    """run_outcome over a run's plain values (an export's rows are not model instances).

    `words` are the labels translated once for many rows (run_outcome_words): building a model
    and asking it for its state's label translated every state's label again, ten gettext calls
    per row, most of a ten-million-row export's time.
    """
    words = words or run_outcome_words(states=[state])
    label = words.states.get(state, state)
    if state == RunState.OUTCOME_UNKNOWN and needs_person:
        return Outcome(label, "bad", words.needs_person)
    if state == RunState.SUCCEEDED and audience_size == 0:
        # Accepted, yet the vendor resolved nobody to send to: not a plain success.
        return Outcome(label, "warn", words.reached_nobody)
    detail = failure_message if state == RunState.FAILED else ""
    return Outcome(label, _RUN_TONES.get(state, ""), detail)


@dataclass(frozen=True)
class RunOutcomeWords:
    """The words of run outcomes in the active language, translated once."""

    states: dict[str, str]
    needs_person: str
    reached_nobody: str


def run_outcome_words(*, states: Iterable[str] = STATE_LABELS) -> RunOutcomeWords:
    """The labels of `states` (every state by default, for many rows at once) and the outcome
    details, in the active language."""
    return RunOutcomeWords(
        states={state: str(STATE_LABELS.get(state, state)) for state in states},
        needs_person=gettext("needs a person"),
        reached_nobody=gettext("reached nobody (an audience of 0)"),
    )


@dataclass(frozen=True)
class ApprovalState:
    """What an approver must see of a run awaiting approval: how many approvals it needs, of
    how many people who could give them, who approved its current parameters so far (and
    when), why it needs them (each policy named) and the facts they judged."""

    needed: int
    eligible: int
    given: list[Approval]
    reasons: list[str]
    facts: dict[str, Any]

    @property
    def remaining(self) -> int:
        return max(0, self.needed - len(self.given))

    @property
    def headline(self) -> str:
        """ "Needs 2 of 3 operators" (the requester never counts among them)."""
        return ngettext(
            "Needs %(needed)s of %(eligible)s operator",
            "Needs %(needed)s of %(eligible)s operators",
            self.eligible,
        ) % {"needed": self.needed, "eligible": self.eligible}

    def approved_by(self, user_id: int | None) -> bool:
        return any(approval.decided_by_id == user_id for approval in self.given)


def run_approval_state(run: Run) -> ApprovalState:
    """The approval state of `run` (runs.services.approvers_of's count, with who and when): its
    current parameters' approvals, one per person, first first. Two queries."""
    given: list[Approval] = []
    seen: set[int] = set()
    for approval in (
        Approval.objects.filter(
            run=run, decision=Approval.Decision.APPROVED, parameters_hash=run.parameters_hash
        )
        .select_related("decided_by")
        .order_by("decided_at", "pk")
    ):
        if approval.decided_by_id not in seen:
            seen.add(approval.decided_by_id)
            given.append(approval)
    eligible = len(approver_ids(run.tenant_id) - {run.requested_by_id})
    return ApprovalState(
        needed=run.approvals_needed if run.approval_required else 0,
        eligible=eligible,
        given=given,
        reasons=list(run.approval_reasons or []),
        facts=dict(run.approval_facts or {}),
    )


def approver_ids(tenant_id: int) -> set[int]:
    """The ids of the tenant's active members who may approve (operators and admins)."""
    roles = [role for role, granted in ROLE_PERMISSIONS.items() if Permission.APPROVE in granted]
    return set(
        Membership.objects.filter(
            tenant_id=tenant_id, role__in=roles, user__is_active=True
        ).values_list("user_id", flat=True)
    )
