"""Reads of the batchjobs app, scoped to one tenant.

- `daily_trigger_status`: "can we trigger Optimove's daily batch now, and if not, why?" — the
  page, the commands and the services' guardrails all read this one answer.
- the registered TalkifAI batch jobs, each with its status read from the vendor;
- `run_explanation`: every way a daily trigger or a job start can fail, in plain words with what
  to do next (the one place failure codes are mapped to sentences).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import FilteredRelation, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.http import Http404

from batchjobs.models import BatchJob, FilesLanded
from batchjobs.vendors.optimove_daily import client as optimove
from batchjobs.vendors.optimove_daily.access import DAILY_RATE_WINDOW_SECONDS, daily_rate_rule
from batchjobs.vendors.talkifai import client as talkifai
from batchjobs.vendors.talkifai.access import talkifai_client
from batchjobs.vendors.talkifai.client import BatchJobDetail
from dashboard.clock import next_utc_midnight, utc_now
from dashboard.crypto import CredentialDecryptionError
from dashboard.models import (
    Membership,
    OptimoveKeyRole,
    Permission,
    Tenant,
    VendorConnection,
    VendorKind,
)
from dashboard.runs.models import (
    IN_FLIGHT_STATES,
    Approval,
    Operation,
    Run,
    RunAttempt,
    RunState,
)
from dashboard.runs.operations import operation_for
from dashboard.runs.rate_limits import rate_limiter
from dashboard.runs.selectors import format_duration
from dashboard.selectors import with_api_key
from dashboard.services import connection_secrets
from dashboard.vendors.http import ConfigurationError, FailureClass, VendorError

logger = logging.getLogger(__name__)

DAILY = Operation.OPTIMOVE_TRIGGER_DAILY
START_JOB = Operation.TALKIFAI_START_BATCH_JOB
# A daily request still being decided on or worked on: a second one must wait for it.
OPEN_DAILY_STATES = frozenset({RunState.AWAITING_APPROVAL}) | IN_FLIGHT_STATES


def _utc(moment: datetime) -> str:
    return f"{moment:%H:%M:%S} UTC"


# -- failures in plain words ------------------------------------------------------------------


@dataclass(frozen=True)
class Explanation:
    """What happened, in plain words, and what to do next. `detail` keeps the vendor's words."""

    headline: str
    advice: str
    detail: str = ""
    tone: str = "bad"  # the badge class: bad, warn


# Optimove TriggerDaily: every documented 400 message and 401/403/429/500/504, headline written
# here, advice from the client's error classes (so the client stays the one source of advice).
DAILY_FAILURES: dict[str, tuple[str, str]] = {
    optimove.TaskNotFound.code: (
        "Optimove has no daily batch task for this tenant (“task not found”).",
        optimove.TaskNotFound.advice,
    ),
    optimove.AlreadyRunning.code: (
        "Optimove says the batch process is already running (“already running”).",
        optimove.AlreadyRunning.advice,
    ),
    optimove.NotInCorrectState.code: (
        "Optimove's batch task is not in a state it can start from (“not in correct state”).",
        optimove.NotInCorrectState.advice,
    ),
    optimove.AlreadyTriggeredToday.code: (
        "Optimove says today's batch was already triggered (“already triggered today”).",
        optimove.AlreadyTriggeredToday.advice,
    ),
    optimove.ConfiguredIncorrectly.code: (
        "Optimove's batch task is misconfigured (“configured not correctly”).",
        optimove.ConfiguredIncorrectly.advice,
    ),
    optimove.ValidationFailed.code: (
        "The batch task did not confirm that it started (“validation failed”).",
        optimove.ValidationFailed.advice,
    ),
    optimove.BadRequest.code: (
        "Optimove refused the request with a message its documentation does not list.",
        optimove.BadRequest.advice,
    ),
    optimove.Unauthorized.code: (
        "Optimove refused the API key (401 Unauthorized).",
        optimove.Unauthorized.advice,
    ),
    optimove.TokenExpired.code: (
        "The API key has expired (403 Forbidden).",
        optimove.TokenExpired.advice
        + " An admin replaces it on the connection page; then request again.",
    ),
    optimove.RateLimited.code: (
        "Optimove's limit of one request per 10 minutes was hit (429 Too Many Requests).",
        optimove.RateLimited.advice,
    ),
    optimove.OptimoveServerError.code: (
        "Optimove had an internal error (500).",
        optimove.OptimoveServerError.advice,
    ),
    optimove.GatewayTimeout.code: (
        "Optimove's gateway gave up after 30 seconds (504 Gateway Timeout).",
        optimove.GatewayTimeout.advice,
    ),
    optimove.UnexpectedStatus.code: (
        "Optimove answered with a status its documentation does not list.",
        optimove.UnexpectedStatus.advice,
    ),
    optimove.UnexpectedAnswer.code: (
        "Optimove answered in an undocumented way, so it is unknown whether the batch started.",
        optimove.UnexpectedAnswer.advice,
    ),
    optimove.TriggerNotSent.code: (
        "The trigger never reached Optimove (connection failed).",
        optimove.TriggerNotSent.advice,
    ),
    optimove.NoAnswer.code: (
        "The trigger was sent but no answer came back.",
        optimove.NoAnswer.advice,
    ),
}

START_FAILURES: dict[str, tuple[str, str]] = {
    talkifai.JobNotFound.error_code: (
        "TalkifAI has no batch job with this id for this API key (“job not found”).",
        talkifai.JobNotFound.advice,
    ),
    talkifai.InvalidStatus.error_code: (
        "The job has ended (completed, failed or cancelled), so it cannot be started (“invalid status”).",
        talkifai.InvalidStatus.advice,
    ),
    talkifai.AlreadyRunning.error_code: (
        "The job is already calling its contacts (“already running”).",
        talkifai.AlreadyRunning.advice,
    ),
    talkifai.Unauthorized.error_code: (
        "TalkifAI refused the API key (401).",
        talkifai.Unauthorized.advice,
    ),
    talkifai.Forbidden.error_code: (
        "The API key may not start batch jobs (403).",
        talkifai.Forbidden.advice,
    ),
    talkifai.EndpointNotFound.error_code: (
        "TalkifAI has no such endpoint (404).",
        talkifai.EndpointNotFound.advice,
    ),
    talkifai.UnexpectedRedirect.error_code: (
        "TalkifAI redirected the call instead of answering it.",
        talkifai.UnexpectedRedirect.advice,
    ),
    talkifai.RequestRejected.error_code: (
        "TalkifAI refused the call.",
        talkifai.RequestRejected.advice,
    ),
    talkifai.RateLimited.error_code: (
        "TalkifAI is rate limiting this API key (429).",
        talkifai.RateLimited.advice,
    ),
    talkifai.TalkifaiServerError.error_code: (
        "TalkifAI had an internal error (5xx).",
        talkifai.TalkifaiServerError.advice,
    ),
    talkifai.GatewayTimeout.error_code: (
        "A gateway stopped waiting for TalkifAI (504); the job may have started.",
        talkifai.GatewayTimeout.advice,
    ),
    talkifai.StartNotConfirmed.error_code: (
        "TalkifAI did not confirm the start; the job may have started.",
        talkifai.StartNotConfirmed.advice,
    ),
    talkifai.UnreadableStartAnswer.error_code: (
        "TalkifAI's answer to the start was unreadable; the job may have started.",
        talkifai.UnreadableStartAnswer.advice,
    ),
    "connection_failed": (
        "The call never reached TalkifAI (connection failed).",
        talkifai.ADVICE_BY_FAILURE_CLASS[FailureClass.NOT_SENT],
    ),
    "no_answer": (
        "The call was sent but no answer came back.",
        talkifai.ADVICE_BY_FAILURE_CLASS[FailureClass.OUTCOME_UNKNOWN],
    ),
}

# Codes the run engine itself writes, whatever the vendor.
ENGINE_FAILURES: dict[str, tuple[str, str]] = {
    "guardrail": (
        "TriggerDesk stopped the run before sending it.",
        "Nothing was sent. The reason is below; request again once it no longer applies.",
    ),
    "approval_expired": (
        "The request expired before anyone approved it.",
        "Nothing was sent. Request it again and have it approved in time.",
    ),
    "rejected_by_approver": (
        "An operator rejected the request.",
        "Nothing was sent. Their comment says why; request again if it is still needed.",
    ),
    "cancelled": ("The request was withdrawn.", "Nothing was sent."),
    "worker_lost": (
        "The worker stopped while sending; the vendor may have received the request.",
        "Do not send it again blindly: check with the vendor first.",
    ),
    "internal_error": (
        "An unexpected error happened while sending; the vendor may have acted.",
        "Do not send it again blindly: check with the vendor first.",
    ),
    "credentials_unreadable": (
        "The connection's API key cannot be decrypted.",
        "Nothing was sent. An admin sets the API key again on the connection page.",
    ),
    "invalid_parameters": (
        "TriggerDesk refused the parameters before sending.",
        "Nothing was sent. Request again with valid values.",
    ),
    "unencodable_request": (
        "The request could not be encoded, so it never left TriggerDesk.",
        "Nothing was sent. Check the connection's settings.",
    ),
    "poll_deadline": (
        "The vendor accepted the run but never reported a final status.",
        "Check the outcome in the vendor's own UI.",
    ),
}


def explain_failure(operation: str, code: str, detail: str = "") -> Explanation:
    """The plain explanation of a failure code of a run of `operation`."""
    table = DAILY_FAILURES if operation == DAILY else START_FAILURES
    headline, advice = table.get(code) or ENGINE_FAILURES.get(code) or ("", "")
    if not headline:
        headline = f"The call did not succeed ({code or 'no reason given'})."
        advice = "The details below say what the vendor answered."
    return Explanation(headline=headline, advice=advice, detail=detail)


def run_explanation(run: Run) -> Explanation | None:
    """What a person should know about a run that did not (yet) go as planned; None when it did."""
    detail = run.failure_message
    if run.state in (RunState.FAILED, RunState.CANCELLED):
        return explain_failure(run.operation, run.failure_code, detail)
    if run.state == RunState.QUEUED and run.failure_code:
        base = explain_failure(run.operation, run.failure_code, detail)
        when = f" at {_utc(run.next_attempt_at)}" if run.next_attempt_at else ""
        return Explanation(
            headline=f"{base.headline} TriggerDesk tries again{when}.",
            advice=base.advice,
            detail=detail,
            tone="warn",
        )
    if run.state == RunState.OUTCOME_UNKNOWN:
        base = explain_failure(run.operation, run.failure_code, detail)
        if run.needs_person:
            next_step = (
                "A person must decide: check in the vendor's UI, then record that it went "
                "through, or send it again."
            )
        elif run.reconcile_after:
            # One message: what happened (the headline) and what TriggerDesk does, when. The
            # advice meant for a person ("re-send after the window") would contradict it.
            return Explanation(
                headline=f"Outcome unknown. {base.headline}",
                advice=f"At {_utc(run.reconcile_after)}: "
                + operation_for(run.operation).reconcile_plan,
                tone="warn",
            )
        else:
            next_step = "TriggerDesk is checking with the vendor."
        return Explanation(
            headline=f"Outcome unknown. {base.headline}",
            advice=f"{next_step} {base.advice}",
            detail=detail,
            tone="warn",
        )
    return None


# -- the daily trigger ----------------------------------------------------------------------


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
    def poll_seconds(self) -> int:
        """How often the page refreshes: every few seconds while a run moves, slower otherwise."""
        if self.open_run is not None and self.open_run.state in IN_FLIGHT_STATES:
            return 2
        if self.triggered_today is not None and self.open_run is None:
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
                blockers.insert(0, Blocker("role", "Only an operator of this tenant can approve."))
            elif run.requested_by_id == membership.user_id:
                blockers.insert(
                    0,
                    Blocker(
                        "four_eyes",
                        "You requested this trigger, so another operator must approve it.",
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
                    f"Your role ({membership.get_role_display()}) can watch the daily trigger "
                    "but not request it.",
                )
            )
        elif not tenant.approval_required and not membership.can(Permission.APPROVE):
            blockers.append(
                Blocker(
                    "role",
                    "Approval is off for this tenant, so only operators trigger, and their "
                    "click sends at once. Ask an operator.",
                )
            )
    if not connections:
        blockers.append(
            Blocker(
                "connection",
                "This tenant has no active Optimove batch connection. An admin adds one under "
                "Connections.",
            )
        )
    elif connection is None:
        blockers.append(
            Blocker(
                "connection",
                f"This tenant has {len(connections)} active Optimove batch connections. "
                "Deactivate all but one, so it is clear which Optimove tenant is triggered.",
            )
        )
    key_expired = False
    if connection is not None:
        if connection.key_role == OptimoveKeyRole.THIRD_PARTY:
            blockers.append(
                Blocker(
                    "key_role",
                    "The connection's API key has the 3rdParty role, which Optimove blocks from "
                    "TriggerDaily. An admin sets an ApiRole or TransactionalMail key on the "
                    "connection.",
                )
            )
        key_expired = _key_expired(connection)
        if key_expired:
            blockers.append(
                Blocker(
                    "key_expired",
                    "The API key has expired: Optimove answered 403 at "
                    f"{connection.last_error_at:%Y-%m-%d %H:%M} UTC. Ask Optimove for a new key; "
                    "an admin replaces it on the connection page.",
                )
            )
    if triggered_today is not None:
        blockers.append(
            Blocker(
                "triggered_today",
                f"Today's batch was already triggered (run #{triggered_today.pk}). Optimove "
                "allows one trigger per UTC day; the next is possible after 00:00 UTC, in "
                f"{format_duration((next_utc_midnight(now) - now).total_seconds())}.",
            )
        )
    if open_run is not None:
        blockers.append(Blocker("open_run", _open_run_sentence(open_run, now)))
    if window_ends_at is not None:
        blockers.append(
            Blocker(
                "rate_window",
                "Optimove allows one request per 10 minutes; the window after the last request "
                f"ends at {_utc(window_ends_at)}, in "
                f"{format_duration((window_ends_at - now).total_seconds())}.",
            )
        )
    if tenant.require_files_landed and files_landed is None:
        blockers.append(
            Blocker(
                "files_landed",
                f"No one has signalled yet that all files for {today:%Y-%m-%d} (UTC) have "
                "landed. Give the signal once every file is uploaded (or let the pipeline "
                "send it).",
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
            return (
                f"Request #{run.pk} expired before approval and is being withdrawn; reload in a "
                "moment."
            )
        return (
            f"Request #{run.pk} is waiting for an operator's approval: approve, reject or "
            "withdraw it first."
        )
    if run.state == RunState.OUTCOME_UNKNOWN:
        if run.needs_person:
            return (
                f"Trigger #{run.pk} has an unknown outcome and a person must settle it first "
                "(check in Optimove, then record what happened)."
            )
        return f"Trigger #{run.pk} has an unknown outcome; TriggerDesk is checking with Optimove."
    return f"Trigger #{run.pk} is {run.get_state_display().lower()}; wait for its outcome."


def daily_run_get(*, tenant: Tenant, run_id: int) -> Run:
    """One of the tenant's daily trigger runs; 404 for anything else."""
    try:
        return _daily_runs(tenant).get(pk=run_id)
    except Run.DoesNotExist:
        raise Http404("No such daily trigger.") from None


def approved_by(run: Run) -> Approval | None:
    """The approval a run went out with (prefetched by the daily selectors)."""
    for approval in run.approvals.all():
        if approval.decision == Approval.Decision.APPROVED:
            return approval
    return None


# -- TalkifAI batch jobs ----------------------------------------------------------------------


def batch_job_list(*, tenant: Tenant) -> QuerySet[BatchJob]:
    return BatchJob.objects.filter(tenant=tenant).select_related(
        "tenant", "connection", "registered_by"
    )


def batch_job_get(*, tenant: Tenant, batch_job_pk: int) -> BatchJob:
    """One of the tenant's registered jobs, with its connection's API key (one query for what
    asking TalkifAI needs); 404 for another tenant's."""
    try:
        return with_api_key(batch_job_list(tenant=tenant), connection="connection").get(
            pk=batch_job_pk
        )
    except BatchJob.DoesNotExist:
        raise Http404("No such batch job.") from None


def talkifai_connection_list(*, tenant: Tenant) -> QuerySet[VendorConnection]:
    return VendorConnection.objects.filter(
        tenant=tenant, kind=VendorKind.TALKIFAI, is_active=True
    ).order_by("name")


@dataclass(frozen=True)
class BatchJobVendorStatus:
    """A job's status as TalkifAI reports it now, or why it could not be read."""

    detail: BatchJobDetail | None
    problem: str = ""

    @property
    def can_start_now(self) -> bool:
        return self.detail is not None and self.detail.can_start_now


def batch_job_vendor_status(*, batch_job: BatchJob) -> BatchJobVendorStatus:
    """Ask TalkifAI for the job's detail; never raises for vendor trouble."""
    connection = batch_job.connection
    if not connection.is_active:
        return BatchJobVendorStatus(None, f"the connection {connection.name} is inactive.")
    try:
        client = talkifai_client(connection, connection_secrets(connection, read_with=batch_job))
        return BatchJobVendorStatus(client.batch_job_detail(batch_job.batch_job_id))
    except VendorError as error:
        return BatchJobVendorStatus(None, talkifai.advice_for(error))
    except ConfigurationError as error:
        return BatchJobVendorStatus(None, f"the connection's settings are unusable: {error}")
    except (CredentialDecryptionError, KeyError):
        return BatchJobVendorStatus(
            None, "the connection's API key cannot be read; an admin sets it again."
        )


def batch_job_start_runs(*, tenant: Tenant, batch_job: BatchJob | None = None) -> QuerySet[Run]:
    """The tenant's TalkifAI start runs, newest first (one job's when given)."""
    runs = Run.objects.filter(tenant=tenant, operation=START_JOB).select_related("connection")
    if batch_job is not None:
        runs = runs.filter(
            connection=batch_job.connection, parameters__batch_job_id=batch_job.batch_job_id
        )
    return runs.order_by("-created_at", "-id")


def last_start_run(*, batch_job: BatchJob) -> Run | None:
    """The job's latest start that says something about it ("Last start here"): a start that
    TalkifAI refused because the job was already running (a stale second tab) is left out."""
    return (
        batch_job_start_runs(tenant=batch_job.tenant, batch_job=batch_job)
        .exclude(state=RunState.FAILED, failure_code=talkifai.AlreadyRunning.error_code)
        .first()
    )


def open_start_run(*, batch_job: BatchJob) -> Run | None:
    """A start of this job that is still under way (queued, sending or unknown)."""
    return (
        batch_job_start_runs(tenant=batch_job.tenant, batch_job=batch_job)
        .filter(state__in=IN_FLIGHT_STATES)
        .first()
    )


def user_membership(*, user: AbstractBaseUser, tenant: Tenant) -> Membership | None:
    """The user's membership of the tenant, for services called outside a view (commands)."""
    if user is None or not user.is_authenticated:
        return None
    return Membership.objects.filter(user=user, tenant=tenant).select_related("tenant").first()
