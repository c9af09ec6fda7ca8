"""The daily trigger's policy and reads, scoped to one tenant: `daily_trigger_status` answers "can
we trigger Optimove's daily batch now, and if not, why?" — the page, the commands, the
services' guardrails and the Optimove adapter's approval check all read this one answer.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.contrib.auth import get_user_model
from django.db.models import FilteredRelation, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.http import Http404
from django.utils.translation import gettext

from batchjobs.explanations import Explanation, _utc, run_explanation
from batchjobs.models import FilesLanded
from batchjobs.vendors.optimove_daily import client as optimove
from batchjobs.vendors.optimove_daily.access import DAILY_RATE_WINDOW_SECONDS, daily_rate_rule
from dashboard.clock import next_utc_midnight, utc_now
from dashboard.models import (
    Membership,
    OptimoveKeyRole,
    Permission,
    Tenant,
    VendorConnection,
    VendorKind,
)
from dashboard.runs.models import Approval, Operation, Run, RunAttempt
from dashboard.runs.rate_limits import rate_limiter
from dashboard.runs.selectors import format_duration
from dashboard.runs.states import IN_FLIGHT_STATES, RunState
from dashboard.tenancy.credentials import connection_secrets
from dashboard.tenancy.crypto import CredentialDecryptionError
from dashboard.tenancy.selectors import with_api_key
from dashboard.vendors.http import FailureClass

logger = logging.getLogger(__name__)


DAILY = Operation.OPTIMOVE_TRIGGER_DAILY


# A daily request still being decided on or worked on: a second one must wait for it.
OPEN_DAILY_STATES = frozenset({RunState.AWAITING_APPROVAL}) | IN_FLIGHT_STATES


@dataclass(frozen=True)
class Blocker:
    """One reason the daily trigger cannot be requested (or approved) now."""

    code: str
    text: str


@dataclass(frozen=True)
class DailyTriggerStatus:
    """Everything the daily trigger page shows, computed at `now`."""

    now: datetime
    utc_date: date
    next_utc_midnight: datetime
    approval_required: bool
    approval_valid_minutes: int
    files_landed_required: bool
    files_landed: FilesLanded | None
    connection: VendorConnection | None
    connection_count: int
    key_role: str
    key_expired: bool
    window_ends_at: datetime | None
    triggered_today: Run | None
    open_run: Run | None
    latest_today: Run | None
    recent_runs: list[Run]
    blockers: list[Blocker] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        """Why a new request cannot be made now, in plain sentences (empty: it can)."""
        return [blocker.text for blocker in self.blockers]

    @property
    def can_request(self) -> bool:
        return not self.blockers

    @property
    def seconds_to_midnight(self) -> int:
        return max(0, math.ceil((self.next_utc_midnight - self.now).total_seconds()))

    @property
    def time_to_midnight(self) -> str:
        return format_duration(self.seconds_to_midnight)

    @property
    def approval_deadline(self) -> datetime:
        """When a request made now expires unapproved: the validity, cut at the UTC midnight."""
        return min(
            self.now + timedelta(minutes=self.approval_valid_minutes), self.next_utc_midnight
        )

    @property
    def window_remaining_seconds(self) -> int:
        if self.window_ends_at is None:
            return 0
        return max(0, math.ceil((self.window_ends_at - self.now).total_seconds()))

    @property
    def window_remaining(self) -> str:
        return format_duration(self.window_remaining_seconds)

    @property
    def done_until_midnight(self) -> bool:
        """Triggered today and nothing open: the next trigger is possible at 00:00 UTC."""
        return self.triggered_today is not None and self.open_run is None

    @property
    def poll_seconds(self) -> int:
        """How often the page refreshes: every few seconds while a run moves, slower otherwise."""
        if self.open_run is not None and self.open_run.state in IN_FLIGHT_STATES:
            return 2
        if self.done_until_midnight:
            # Done for the day: nothing on the page can change before the UTC day does (a
            # request is refused until then), so the next refresh is at midnight.
            return max(5, self.seconds_to_midnight + 1)
        candidates = [30]
        if self.open_run is not None:
            candidates.append(5)
        if self.window_remaining_seconds:
            candidates.append(max(2, min(15, self.window_remaining_seconds)))
        if self.seconds_to_midnight < 120:
            candidates.append(5)
        return min(candidates)

    @property
    def open_run_explanation(self) -> Explanation | None:
        return run_explanation(self.open_run) if self.open_run else None

    @property
    def latest_today_explanation(self) -> Explanation | None:
        return run_explanation(self.latest_today) if self.latest_today else None

    def approve_blockers(self, run: Run, *, membership: Membership | None = None) -> list[Blocker]:
        """Why `run` cannot be approved now (the engine re-checks the four-eyes rule itself)."""
        blockers = [
            blocker
            for blocker in self.blockers
            if blocker.code not in ("open_run", "role")
            or (blocker.code == "open_run" and self.open_run and self.open_run.pk != run.pk)
        ]
        if membership is not None:
            if not membership.can(Permission.APPROVE):
                blockers.insert(
                    0, Blocker("role", gettext("Only an operator of this tenant can approve."))
                )
            elif run.requested_by_id == membership.user_id:
                blockers.insert(
                    0,
                    Blocker(
                        "four_eyes",
                        gettext("You requested this trigger, so another operator must approve it."),
                    ),
                )
        return blockers


def daily_connection_list(*, tenant: Tenant) -> QuerySet[VendorConnection]:
    """The tenant's active Optimove batch connections (exactly one is usable for the trigger)."""
    return VendorConnection.objects.filter(
        tenant=tenant, kind=VendorKind.OPTIMOVE_BATCH, is_active=True
    ).order_by("name")


def _daily_attempts(connection: VendorConnection | OuterRef) -> QuerySet[RunAttempt]:
    """The attempts of the connection's TriggerDaily runs that reached Optimove, newest first."""
    return (
        RunAttempt.objects.filter(run__connection=connection, run__operation=DAILY)
        .exclude(failure_class=FailureClass.NOT_SENT)
        .exclude(purpose=RunAttempt.Purpose.POLL)
        .order_by("-started_at")
    )


def _daily_connections_for_status(*, tenant: Tenant, today: date) -> QuerySet[VendorConnection]:
    """daily_connection_list, each with what the status reads beside it in the same query: its
    newest attempt that reached Optimove, its stored API key and when that was set, and the
    tenant's "files landed" signal for `today` (`files_landed_today`, one per tenant and day)."""
    return (
        with_api_key(daily_connection_list(tenant=tenant))
        .annotate(
            last_daily_attempt_at=Subquery(
                _daily_attempts(OuterRef("pk")).values("started_at")[:1]
            ),
            files_landed_today=FilteredRelation(
                "tenant__files_landed", condition=Q(tenant__files_landed__utc_date=today)
            ),
        )
        .select_related("files_landed_today")
    )


def daily_window_ends_at(*, connection: VendorConnection, now: datetime) -> datetime | None:
    """When Optimove's 10-minute window after the last request to this connection ends.

    Two sources, the later wins: the newest attempt of the connection's TriggerDaily runs that
    reached Optimove (anything but "not sent"), and the window a worker holds in Redis (which
    also covers a send still under way, whose attempt is not recorded yet).
    """
    ends_at = None
    # Read with the connection where the status selector fetched it (no query of its own).
    annotated = hasattr(connection, "last_daily_attempt_at")
    if annotated:
        last = connection.last_daily_attempt_at
    else:
        last = _daily_attempts(connection).values_list("started_at", flat=True).first()
    if last is not None:
        ends_at = last + timedelta(seconds=DAILY_RATE_WINDOW_SECONDS)
    try:
        rule = daily_rate_rule(connection, connection_secrets(connection, read_with=connection))
        remaining = rate_limiter().window_remaining(rule)
    except CredentialDecryptionError:
        remaining = 0.0
    except Exception:  # Redis down: the page still answers, from the attempts alone.
        logger.warning("could not read the TriggerDaily rate window from Redis", exc_info=True)
        remaining = 0.0
    if remaining > 0:
        from_redis = now + timedelta(seconds=remaining)
        ends_at = max(ends_at, from_redis) if ends_at else from_redis
    return ends_at if ends_at is not None and ends_at > now else None


def _key_expired(connection: VendorConnection) -> bool:
    """Optimove's last answer was 403 token_expired and no new key was set since."""
    if not connection.last_error.startswith(optimove.TokenExpired.code):
        return False
    if hasattr(connection, "api_key_set_at"):
        set_at = connection.api_key_set_at
        return set_at is None or not set_at > connection.last_error_at
    replaced = connection.secrets.filter(
        name="api_key", set_at__gt=connection.last_error_at
    ).exists()
    return not replaced


def _daily_runs(tenant: Tenant) -> QuerySet[Run]:
    return (
        Run.objects.filter(tenant=tenant, operation=DAILY)
        .select_related("connection", "requested_by")
        .prefetch_related(
            Prefetch(
                "approvals",
                queryset=Approval.objects.select_related("decided_by").order_by("decided_at"),
            )
        )
    )


RECENT_DAILY_RUNS = 10


# What the status shows of a run's approval and of its rejection (Approval fields).
DECISION_FIELDS = ("pk", "decided_at", "comment", "decided_by_id", "decided_by__username")


def _with_decisions(runs: QuerySet[Run]) -> QuerySet[Run]:
    """`runs` with their first approval and first rejection (by decision time, as approved_by
    and run_rejection read them) as columns of the same query: one indexed lookup per run and
    field instead of a query for every approval of every run."""
    columns = {}
    for decision in (Approval.Decision.APPROVED, Approval.Decision.REJECTED):
        first = Approval.objects.filter(run=OuterRef("pk"), decision=decision).order_by(
            "decided_at", "id"
        )
        for name in DECISION_FIELDS:
            columns[f"{decision}_{name}"] = Subquery(first.values(name)[:1])
    return runs.annotate(**columns)


def _decision_of(run: Run, decision: str) -> Approval | None:
    """The decision _with_decisions read with `run`, as an Approval to show (not to save)."""
    pk = getattr(run, f"{decision}_pk")
    if pk is None:
        return None
    user_id = getattr(run, f"{decision}_decided_by_id")
    user = get_user_model()(pk=user_id, username=getattr(run, f"{decision}_decided_by__username"))
    return Approval(
        pk=pk,
        run=run,
        decision=decision,
        decided_at=getattr(run, f"{decision}_decided_at"),
        comment=getattr(run, f"{decision}_comment"),
        decided_by=user if user_id is not None else None,
    )


# What the OR of _daily_status_runs' subqueries can match at most. Said as a LIMIT because the
# planner cannot tell how few rows that OR matches: at a million runs it costed the query for a
# thousand and crossed PostgreSQL's jit_above_cost, and compiling it took 69 of its 70 ms.
STATUS_RUNS_AT_MOST = RECENT_DAILY_RUNS + 3


def _daily_status_runs(*, tenant: Tenant, today: date) -> list[Run]:
    """The daily runs the status shows, newest first, with their approval and (for a cancelled
    one) its rejection, in one query: the RECENT_DAILY_RUNS newest, and the newest of each kind
    the status names (today's success, the open run, today's latest) even when older than
    those. Each subquery reads one index (Run.Meta.indexes), however long the history."""
    daily = Run.objects.filter(tenant=tenant, operation=DAILY).order_by("-created_at", "-id")
    newest = daily.values("pk")
    runs = list(
        _with_decisions(daily.select_related("connection", "requested_by")).filter(
            Q(pk__in=newest[:RECENT_DAILY_RUNS])
            | Q(pk__in=newest.filter(utc_date=today, state=RunState.SUCCEEDED)[:1])
            | Q(pk__in=newest.filter(state__in=OPEN_DAILY_STATES)[:1])
            | Q(pk__in=newest.filter(utc_date=today)[:1])
        )[:STATUS_RUNS_AT_MOST]
    )
    for run in runs:
        run.approval = _decision_of(run, Approval.Decision.APPROVED)
        run.rejection = (
            _decision_of(run, Approval.Decision.REJECTED)
            if run.state == RunState.CANCELLED
            else None
        )
    return runs


def daily_trigger_status(
    *, tenant: Tenant, now: datetime | None = None, membership: Membership | None = None
) -> DailyTriggerStatus:
    """Can the tenant's daily trigger be requested now, and if not, why (see module doc).

    With `membership`, the reasons include what that person's role does not allow.
    """
    now = now or utc_now()
    today = now.date()
    connections = list(_daily_connections_for_status(tenant=tenant, today=today))
    connection = connections[0] if len(connections) == 1 else None
    runs = _daily_status_runs(tenant=tenant, today=today)
    triggered_today = next(
        (run for run in runs if run.utc_date == today and run.state == RunState.SUCCEEDED), None
    )
    open_run = next((run for run in runs if run.state in OPEN_DAILY_STATES), None)
    latest_today = next((run for run in runs if run.utc_date == today), None)
    if connections:
        # Django leaves a filtered relation that matched nothing unset, rather than None.
        files_landed = getattr(connections[0], "files_landed_today", None)
    else:  # read with the connections when there is one
        files_landed = FilesLanded.objects.filter(tenant=tenant, utc_date=today).first()
    window_ends_at = daily_window_ends_at(connection=connection, now=now) if connection else None

    blockers: list[Blocker] = []
    if membership is not None:
        if not membership.can(Permission.REQUEST):
            blockers.append(
                Blocker(
                    "role",
                    gettext("Your role (%(role)s) can watch the daily trigger but not request it.")
                    % {"role": membership.get_role_display()},
                )
            )
        elif not tenant.approval_required and not membership.can(Permission.APPROVE):
            blockers.append(
                Blocker(
                    "role",
                    gettext(
                        "Approval is off for this tenant, so only operators trigger, and their "
                        "click sends at once. Ask an operator."
                    ),
                )
            )
    if not connections:
        blockers.append(
            Blocker(
                "connection",
                gettext(
                    "This tenant has no active Optimove batch connection. An admin adds one under "
                    "Connections."
                ),
            )
        )
    elif connection is None:
        blockers.append(
            Blocker(
                "connection",
                gettext(
                    "This tenant has %(count)s active Optimove batch connections. "
                    "Deactivate all but one, so it is clear which Optimove tenant is "
                    "triggered."
                )
                % {"count": len(connections)},
            )
        )
    key_expired = False
    if connection is not None:
        if connection.key_role == OptimoveKeyRole.THIRD_PARTY:
            blockers.append(
                Blocker(
                    "key_role",
                    gettext(
                        "The connection's API key has the 3rdParty role, which Optimove blocks from "
                        "TriggerDaily. An admin sets an ApiRole or TransactionalMail key on the "
                        "connection."
                    ),
                )
            )
        key_expired = _key_expired(connection)
        if key_expired:
            blockers.append(
                Blocker(
                    "key_expired",
                    gettext(
                        "The API key has expired: Optimove answered 403 at %(last_error_at)s "
                        "UTC. Ask Optimove for a new key; an admin replaces it on the "
                        "connection page."
                    )
                    % {"last_error_at": format(connection.last_error_at, "%Y-%m-%d %H:%M")},
                )
            )
    if triggered_today is not None:
        blockers.append(
            Blocker(
                "triggered_today",
                gettext(
                    "Today's batch was already triggered (run #%(run_pk)s). "
                    "Optimove allows one trigger per UTC day; the next is possible after "
                    "00:00 UTC, in %(duration)s."
                )
                % {
                    "run_pk": triggered_today.pk,
                    "duration": format_duration((next_utc_midnight(now) - now).total_seconds()),
                },
            )
        )
    if open_run is not None:
        blockers.append(Blocker("open_run", _open_run_sentence(open_run, now)))
    if window_ends_at is not None:
        blockers.append(
            Blocker(
                "rate_window",
                gettext(
                    "Optimove allows one request per 10 minutes; the window after the last "
                    "request ends at %(when)s, in %(duration)s."
                )
                % {
                    "when": _utc(window_ends_at),
                    "duration": format_duration((window_ends_at - now).total_seconds()),
                },
            )
        )
    if tenant.require_files_landed and files_landed is None:
        blockers.append(
            Blocker(
                "files_landed",
                gettext(
                    "No one has signalled yet that all files for %(today)s (UTC) have "
                    "landed. Give the signal once every file is uploaded (or let the "
                    "pipeline send it)."
                )
                % {"today": format(today, "%Y-%m-%d")},
            )
        )
    return DailyTriggerStatus(
        now=now,
        utc_date=today,
        next_utc_midnight=next_utc_midnight(now),
        approval_required=tenant.approval_required,
        approval_valid_minutes=tenant.approval_valid_minutes,
        files_landed_required=tenant.require_files_landed,
        files_landed=files_landed,
        connection=connection,
        connection_count=len(connections),
        key_role=connection.key_role if connection else "",
        key_expired=key_expired,
        window_ends_at=window_ends_at,
        triggered_today=triggered_today,
        open_run=open_run,
        latest_today=latest_today,
        recent_runs=runs[:RECENT_DAILY_RUNS],
        blockers=blockers,
    )


def _open_run_sentence(run: Run, now: datetime) -> str:
    if run.state == RunState.AWAITING_APPROVAL:
        if run.approval_expires_at and run.approval_expires_at <= now:
            return gettext(
                "Request #%(run_pk)s expired before approval and is being withdrawn; "
                "reload in a moment."
            ) % {"run_pk": run.pk}
        return gettext(
            "Request #%(run_pk)s is waiting for an operator's approval: approve, "
            "reject or withdraw it first."
        ) % {"run_pk": run.pk}
    if run.state == RunState.OUTCOME_UNKNOWN:
        if run.needs_person:
            return gettext(
                "Trigger #%(run_pk)s has an unknown outcome and a person must settle it "
                "first (check in Optimove, then record what happened)."
            ) % {"run_pk": run.pk}
        return gettext(
            "Trigger #%(run_pk)s has an unknown outcome; TriggerDesk is checking with Optimove."
        ) % {"run_pk": run.pk}
    return gettext("Trigger #%(run_pk)s is %(state)s; wait for its outcome.") % {
        "run_pk": run.pk,
        "state": run.get_state_display().lower(),
    }


def daily_run_get(*, tenant: Tenant, run_id: int) -> Run:
    """One of the tenant's daily trigger runs; 404 for anything else."""
    try:
        return _daily_runs(tenant).get(pk=run_id)
    except Run.DoesNotExist:
        raise Http404(gettext("No such daily trigger.")) from None


def approved_by(run: Run) -> Approval | None:
    """The approval a run went out with (prefetched by the daily selectors)."""
    for approval in run.approvals.all():
        if approval.decision == Approval.Decision.APPROVED:
            return approval
    return None
