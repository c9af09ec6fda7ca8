"""Run, its attempts and its approval: the single source of truth for one vendor call."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now
from django.utils.translation import gettext, gettext_lazy

from dashboard.runs.states import TERMINAL_STATES, RunState


class Operation(models.TextChoices):
    OPTIMOVE_TRIGGER_DAILY = "optimove_trigger_daily", gettext_lazy("Optimove: trigger daily batch")
    OPTIMOVE_RUN_EVENT_GENERATOR = (
        "optimove_run_event_generator",
        gettext_lazy("Optimove: run event generator"),
    )
    ALTCRAFT_START_BATCH = "altcraft_start_batch", gettext_lazy("Altcraft: bulk trigger launch")
    ALTCRAFT_IMPORT_AND_START = (
        "altcraft_import_and_start",
        gettext_lazy("Altcraft: import profiles + trigger"),
    )
    TALKIFAI_START_BATCH_JOB = (
        "talkifai_start_batch_job",
        gettext_lazy("TalkifAI: start batch job now"),
    )


class Run(models.Model):
    tenant = models.ForeignKey("dashboard.Tenant", on_delete=models.PROTECT, related_name="runs")
    connection = models.ForeignKey(
        "dashboard.VendorConnection", on_delete=models.PROTECT, related_name="runs"
    )
    operation = models.CharField(max_length=60, choices=Operation.choices)
    # What people call the run ("Match Start Notifications → Arsenal", "Daily batch ·
    # 2026-12-06") and its connection's name, both as they were when it was requested: a
    # generator or connection renamed later must not rewrite the history (RunOperation.title).
    title = models.CharField(max_length=300, blank=True)
    connection_name = models.CharField(max_length=120, blank=True)
    # The exact parameters, snapshotted at request time (never secrets) and their hash, which an
    # approval is bound to and duplicate detection compares.
    parameters = models.JSONField(default=dict)
    parameters_hash = models.CharField(max_length=64)
    idempotency_key = models.CharField(max_length=80)
    state = models.CharField(max_length=30, choices=RunState.choices, default=RunState.DRAFT)
    # The UTC day a daily trigger is for; the once-per-day constraint hangs on it.
    utc_date = models.DateField(null=True, blank=True)

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_label = models.CharField(max_length=150, blank=True)
    requested_at = models.DateTimeField(null=True, blank=True)
    approval_required = models.BooleanField(default=False)
    approval_expires_at = models.DateTimeField(null=True, blank=True)
    # What the approval policies asked when it was requested (approval_policies): how many
    # distinct approvers, and why in words naming each policy; and the facts they judged
    # (recipients, topics, audience estimate, file hash), shown to the approvers.
    approvals_needed = models.PositiveSmallIntegerField(default=1, db_default=1)
    approval_reasons = models.JSONField(default=list, blank=True, db_default=[])
    approval_facts = models.JSONField(default=dict, blank=True, db_default={})
    attestation = models.CharField(max_length=300, blank=True)
    send_anyway = models.BooleanField(
        default=False, help_text="A person confirmed this probable duplicate should still be sent."
    )
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    attempt_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)  # when the accepted send left
    reconcile_after = models.DateTimeField(null=True, blank=True)
    needs_person = models.BooleanField(
        default=False, help_text="Automatic reconciliation cannot decide; a person must."
    )

    vendor_reference = models.CharField(max_length=120, blank=True)  # execution/task/job id
    vendor_status = models.CharField(max_length=40, blank=True)
    progress = models.PositiveSmallIntegerField(null=True, blank=True)
    audience_size = models.PositiveIntegerField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)
    poll_count = models.PositiveIntegerField(default=0)
    next_poll_at = models.DateTimeField(null=True, blank=True)
    poll_deadline = models.DateTimeField(null=True, blank=True)

    failure_class = models.CharField(max_length=30, blank=True)
    failure_code = models.CharField(max_length=60, blank=True)
    failure_message = models.TextField(blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"], name="run_tenant_idempotency_key_unique"
            ),
            # The vendor's own rule, kept in the database: one successful daily trigger per tenant
            # per UTC day.
            models.UniqueConstraint(
                fields=["tenant", "utc_date"],
                condition=Q(operation="optimove_trigger_daily", state="succeeded"),
                name="run_one_daily_success_per_utc_day",
            ),
            # And never two daily triggers in flight for one tenant.
            models.UniqueConstraint(
                fields=["tenant"],
                condition=Q(
                    operation="optimove_trigger_daily",
                    state__in=["queued", "sending", "accepted", "outcome_unknown"],
                ),
                name="run_one_daily_in_flight",
            ),
            models.CheckConstraint(condition=Q(state__in=RunState.values), name="run_state_known"),
            models.CheckConstraint(
                condition=Q(progress__isnull=True) | Q(progress__lte=100),
                name="run_progress_percent",
            ),
        ]
        indexes = [
            # The run history (runs.selectors.run_list) unfiltered and its keyset pages: one
            # tenant's runs, newest first, ties broken by id.
            models.Index(fields=["tenant", "-created_at", "-id"], name="run_tenant_created_id"),
            # The run history filtered by state (and the home page's failures / in progress).
            models.Index(fields=["tenant", "state", "-created_at", "-id"], name="run_tenant_state"),
            # The run history filtered by operation (vendor kind), and the daily page's
            # "latest daily run today" (batchjobs.selectors.daily_trigger_status).
            models.Index(
                fields=["tenant", "operation", "-created_at", "-id"], name="run_tenant_operation"
            ),
            # The run history filtered by connection (vendor).
            models.Index(
                fields=["tenant", "connection", "-created_at", "-id"], name="run_tenant_connection"
            ),
            # The run history filtered by requester, and "my requests".
            models.Index(
                fields=["tenant", "requested_by", "-created_at", "-id"], name="run_tenant_requester"
            ),
            # The run history's text search on vendor ids (execution/task/job id): exact match.
            models.Index(
                fields=["tenant", "vendor_reference"],
                condition=~Q(vendor_reference=""),
                name="run_tenant_vendor_reference",
            ),
            # The daily page's "today's runs" (batchjobs.selectors.daily_trigger_status).
            models.Index(
                fields=["tenant", "utc_date", "-created_at"],
                condition=Q(operation="optimove_trigger_daily"),
                name="run_daily_by_utc_date",
            ),
            # The daily page's open run and the home page's "needs a person / waiting for
            # approval": the few runs that are not finished, whatever the history's size.
            models.Index(
                fields=["tenant", "operation", "-created_at"],
                condition=Q(
                    state__in=[
                        "draft",
                        "awaiting_approval",
                        "queued",
                        "sending",
                        "accepted",
                        "outcome_unknown",
                    ]
                ),
                name="run_tenant_unfinished",
            ),
            # The navigation's "waiting for your approval" badge on every page
            # (runs.selectors.approvals_waiting_count): an index-only COUNT of the tenant's
            # requests that are not this person's. Through run_tenant_state it read every waiting
            # run's row for its requester: 10 ms a page with 6,000 waiting, 0.7 ms this way.
            models.Index(
                fields=["tenant", "requested_by"],
                condition=Q(state="awaiting_approval"),
                name="run_awaiting_approval",
            ),
            # The sweeper: open runs by state.
            models.Index(
                fields=["state", "updated_at"],
                condition=Q(state__in=["queued", "sending", "accepted", "outcome_unknown"]),
                name="run_open_by_state",
            ),
            # Duplicate detection: same parameters recently.
            models.Index(fields=["tenant", "parameters_hash", "created_at"], name="run_duplicates"),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Run {self.pk} {self.operation} ({self.state})"

    # Django's get_FOO_display builds a dict of every choice on each call, translating each
    # label to hash it: ten gettext calls for a state, thirty for an operation. A page of fifty
    # runs made a thousand; these translate the one label shown.
    def get_state_display(self) -> str:
        return str(STATE_LABELS.get(self.state, self.state))

    def get_operation_display(self) -> str:
        return str(OPERATION_LABELS.get(self.operation, self.operation))

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def is_open(self) -> bool:
        return self.state not in TERMINAL_STATES

    @property
    def name(self) -> str:
        """The run's readable name: its title, or for a run recorded without one its
        parameters in a line (its operation's label if even that fails)."""
        if self.title:
            return self.title
        # Here, not at the top: the operations' registry is the engine's, loaded on first use.
        from dashboard.runs.operations import operation_for

        try:
            return operation_for(self.operation).describe(self.parameters)
        except Exception:
            return self.get_operation_display() or self.operation

    @property
    def failure_text(self) -> str:
        """The failure message in the reader's language where TriggerDesk wrote it itself: a
        rejection is recorded as "Rejected by <who>: <comment>" (services.run_reject); the
        vendors' words and the rest stay as they were recorded."""
        prefix = "Rejected by "
        if self.failure_code == "rejected_by_approver" and self.failure_message.startswith(prefix):
            return gettext("Rejected by %(who_and_comment)s") % {
                "who_and_comment": self.failure_message.removeprefix(prefix)
            }
        return self.failure_message

    def state_in_words(self) -> str:
        """Where the run stands, as the end of a sentence starting "This run …" (a refusal
        shown to a person whose page is out of date)."""
        if self.state == RunState.CANCELLED:
            return {
                "rejected_by_approver": gettext("was rejected"),
                "approval_expired": gettext("expired before anyone approved it"),
            }.get(self.failure_code) or gettext("was cancelled")
        return {
            RunState.DRAFT: gettext("is still a draft"),
            RunState.AWAITING_APPROVAL: gettext("is waiting for approval"),
            RunState.QUEUED: gettext("was already approved and is waiting to be sent"),
            RunState.SENDING: gettext("is being sent right now"),
            RunState.ACCEPTED: gettext("was sent and the vendor is working on it"),
            RunState.SUCCEEDED: gettext("was already sent and went through"),
            RunState.FAILED: gettext("has failed"),
            RunState.OUTCOME_UNKNOWN: gettext("was sent and its outcome is not known yet"),
        }.get(self.state) or gettext("is %(state)s") % {"state": self.get_state_display().lower()}


# A run's state and operation labels (lazy, translated when shown), read once from the choices.
STATE_LABELS = dict(Run._meta.get_field("state").flatchoices)
OPERATION_LABELS = dict(Run._meta.get_field("operation").flatchoices)


class Approval(models.Model):
    """A second person's decision on a run, bound to the exact parameters they saw."""

    class Decision(models.TextChoices):
        APPROVED = "approved", gettext_lazy("Approved")
        REJECTED = "rejected", gettext_lazy("Rejected")

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="approvals")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    decision = models.CharField(max_length=20, choices=Decision.choices)
    parameters_hash = models.CharField(max_length=64)
    comment = models.CharField(max_length=500, blank=True)
    decided_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # One approval per person of the parameters they saw: fifty concurrent clicks
            # make one, and one person never counts twice towards "N of M".
            models.UniqueConstraint(
                fields=["run", "decided_by", "parameters_hash"],
                condition=Q(decision="approved"),
                name="approval_one_per_person",
            )
        ]

    def __str__(self) -> str:
        return f"{self.decision} run {self.run_id} by {self.decided_by_id}"


class RunAttempt(models.Model):
    """One conversation with the vendor on behalf of a run: the request, the answer, the verdict."""

    class Purpose(models.TextChoices):
        SEND = "send", gettext_lazy("Send")
        POLL = "poll", gettext_lazy("Status poll")
        RECONCILE = "reconcile", gettext_lazy("Reconciliation")
        CHECK = "check", gettext_lazy("Pre-send check")

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    purpose = models.CharField(max_length=20, choices=Purpose.choices)
    started_at = models.DateTimeField()
    latency_ms = models.FloatField(null=True)
    # Redacted request and response (see dashboard.vendors.http.Exchange).
    exchange = models.JSONField(default=dict)
    status_code = models.PositiveSmallIntegerField(null=True)
    failure_class = models.CharField(max_length=30, blank=True)
    failure_code = models.CharField(max_length=60, blank=True)
    outcome = models.CharField(max_length=300, blank=True)
    # Recorded (and committed) before the call leaves, so a worker killed mid-call still leaves
    # the call an auditor must see: which worker (host:pid), what it was about to ask. Null
    # finished_at: no answer was recorded (in flight, or the worker died).
    worker = models.CharField(max_length=200, blank=True)
    request = models.JSONField(default=dict, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # When the request was about to leave (its rate place taken): evidence that it may have
    # reached the vendor. A batched dispatcher claims runs ahead of sending them, so it opens
    # their send attempts with this null and sets it, one UPDATE per grant of places, just
    # before their requests go out: an open send attempt without it provably never left, and
    # the sweeper puts its run back in the queue. Every other writer (the per-run paths, code
    # that predates the field) gets the insert time from the database: presumed started.
    request_started_at = models.DateTimeField(null=True, blank=True, db_default=Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="attempt_run_number_unique")
        ]
        ordering = ["number"]

    def __str__(self) -> str:
        return f"Attempt {self.number} of run {self.run_id}"

    @property
    def never_started(self) -> bool:
        """Its request provably never left: claimed and still waiting for a place, or closed as
        not sent before it started (attempts from before request_started_at have no mark)."""
        return self.request_started_at is None and (
            self.finished_at is None or self.failure_class == "not_sent"
        )
