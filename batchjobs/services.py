"""Writes of the batchjobs app: the guardrails around Optimove's daily trigger, the files-landed
signal, and TalkifAI batch jobs (register, remove, start now).

Runs go through the run engine (dashboard.runs.services), which audits every state change; the
functions here check who may act and the rules across objects first, and audit what they write
themselves. Views, commands and (later) the automation API all call these, so a rule here holds
whatever the way in.

Daily trigger rules, beyond what the engine and the database already enforce (one success per
tenant per UTC day, one trigger in flight per tenant, four eyes, approvals bound to the exact
parameters and expiring at the UTC day boundary):
- one open request per tenant at a time (requests are serialised on the tenant row);
- no request or approval inside Optimove's 10-minute window after the last request;
- a 3rdParty-role key or an expired key is refused before anything is sent;
- when the tenant requires it, a "files landed" signal for the UTC date;
- with approval off, only operators trigger (their click sends at once); marketers need approval
  on to take part, because a marketer's click must never reach Optimove without an operator.
"""

from __future__ import annotations

from datetime import date

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext

from batchjobs import guardrails, selectors
from batchjobs.models import BatchJob, FilesLanded
from batchjobs.vendors.talkifai import client as talkifai
from batchjobs.vendors.talkifai import status as talkifai_status
from batchjobs.vendors.talkifai.access import talkifai_client
from batchjobs.vendors.talkifai.client import validate_batch_job_id
from dashboard.audit.trail import Actor, record_audit_event, save_with_audit
from dashboard.clock import utc_now
from dashboard.models import Membership, Permission, Tenant, VendorConnection, VendorKind
from dashboard.runs import services as runs
from dashboard.runs.models import Run
from dashboard.runs.services import RunActionError
from dashboard.runs.states import RunState
from dashboard.tenancy.credentials import connection_secrets
from dashboard.tenancy.crypto import CredentialDecryptionError
from dashboard.vendors.http import ConfigurationError, VendorError

DAILY = guardrails.DAILY
START_JOB = selectors.START_JOB
ATTESTATION = "The requester attests that all of the UTC day's files have finished uploading."


def _membership(actor: Actor, tenant: Tenant, permission: str, doing: str) -> Membership:
    """The acting person's membership, if it allows `permission`; RunActionError otherwise."""
    if actor.user is None or not actor.user.is_authenticated:
        raise RunActionError(
            gettext("Only a signed-in member of the tenant can %(doing)s.") % {"doing": doing}
        )
    membership = selectors.user_membership(user=actor.user, tenant=tenant)
    if membership is None:
        raise RunActionError(
            gettext("%(who)s is not a member of %(tenant_name)s.")
            % {"who": actor.user.get_username(), "tenant_name": tenant.name}
        )
    if not membership.can(permission):
        raise RunActionError(
            gettext("Your role (%(role)s) cannot %(doing)s in %(tenant_name)s.")
            % {"role": membership.get_role_display(), "doing": doing, "tenant_name": tenant.name}
        )
    return membership


# -- the daily trigger ----------------------------------------------------------------------


def daily_trigger_request(
    *,
    actor: Actor,
    tenant: Tenant,
    wait_time_for_validation_seconds: int | None,
    idempotency_key: str,
    files_uploaded_attested: bool,
) -> Run:
    """Request today's Optimove daily trigger (for the current UTC date).

    The requester attests that the day's files have all been uploaded (Optimove does not check).
    With the tenant's "approval required" on, the run waits for another operator; with it off,
    an operator's request is queued and sent at once. The same idempotency key always returns
    the same run, so a double submit makes one request. Raises ValidationError for bad input and
    RunActionError, with every reason in plain words, when a guardrail says no.
    """
    if not files_uploaded_attested:
        raise ValidationError(
            {
                "attest_files_uploaded": gettext(
                    "Confirm that all of today's files have finished "
                    "uploading: Optimove does not check it, and triggers once per day."
                )
            }
        )
    membership = _membership(actor, tenant, Permission.REQUEST, "request the daily trigger")
    key = (idempotency_key or "").strip()
    existing = Run.objects.filter(tenant=tenant, idempotency_key=key).first() if key else None
    if existing is not None:
        if existing.operation != DAILY:
            raise ValidationError(
                gettext("This form was already used for something else; reload it.")
            )
        return existing
    with transaction.atomic():
        # One decision at a time per tenant, so two people cannot both open a request.
        # FOR NO KEY UPDATE: it keeps two decisions apart without blocking the key-share lock
        # every insert referencing the tenant takes (runs, audit rows: a deadlock otherwise).
        locked = Tenant.objects.select_for_update(no_key=True).get(pk=tenant.pk)
        now = utc_now()
        status = guardrails.daily_trigger_status(tenant=locked, now=now, membership=membership)
        if status.blockers:
            raise RunActionError(" ".join(status.reasons))
        return runs.run_submit(
            actor=actor,
            tenant=locked,
            connection=status.connection,
            operation=DAILY,
            parameters={"wait_time_for_validation_seconds": wait_time_for_validation_seconds},
            idempotency_key=key,
            approval_required=locked.approval_required,
            attestation=ATTESTATION,
            utc_date=now.date(),
            check_duplicates=False,
        )


def daily_trigger_approve(
    *, actor: Actor, tenant: Tenant, run: Run, parameters_hash_seen: str, comment: str = ""
) -> Run:
    """An operator who did not request it approves a daily trigger; it is sent at once.

    The approval is bound to the parameters the approver saw (`parameters_hash_seen`) and is
    refused inside the rate window, without a files-landed signal the tenant requires, with a
    blocked or expired key, or while another trigger is open. The engine then re-checks the
    four-eyes rule, the state and the expiry under a row lock, so fifty clicks approve once.
    """
    _membership(actor, tenant, Permission.APPROVE, "approve the daily trigger")
    run = guardrails.daily_run_get(tenant=tenant, run_id=run.pk)
    # The daily guardrails are checked by the engine, under the run's lock, through
    # TriggerDailyOperation.approval_problem. Not inside a transaction of ours: the engine commits an expired request's cancellation.
    return runs.run_approve(
        actor=actor, run=run, parameters_hash_seen=parameters_hash_seen, comment=comment
    )


def daily_trigger_reject(*, actor: Actor, tenant: Tenant, run: Run, comment: str = "") -> Run:
    """An operator declines a daily trigger request; nothing is sent."""
    _membership(actor, tenant, Permission.APPROVE, "reject a daily trigger request")
    run = guardrails.daily_run_get(tenant=tenant, run_id=run.pk)
    return runs.run_reject(actor=actor, run=run, comment=comment.strip())


def daily_trigger_withdraw(*, actor: Actor, tenant: Tenant, run: Run) -> Run:
    """The requester (or an operator) withdraws a request that has not been sent."""
    _membership(actor, tenant, Permission.REQUEST, "withdraw a daily trigger")
    run = guardrails.daily_run_get(tenant=tenant, run_id=run.pk)
    # Who may withdraw is the engine's one rule for every page and command (run_cancel_refusal).
    return runs.run_cancel(actor=actor, run=run)


def daily_trigger_change_wait(
    *, actor: Actor, tenant: Tenant, run: Run, wait_time_for_validation_seconds: int | None
) -> Run:
    """The requester changes the validation wait of a request awaiting approval.

    The parameters hash changes with it, so an approver who opened the page before must look
    again: the engine refuses an approval bound to the old parameters.
    """
    membership = _membership(actor, tenant, Permission.REQUEST, "change a daily trigger")
    run = guardrails.daily_run_get(tenant=tenant, run_id=run.pk)
    if run.requested_by_id != membership.user_id:
        raise RunActionError(
            gettext("Only the requester can change the request; others can reject it.")
        )
    return runs.run_change_parameters(
        actor=actor,
        run=run,
        parameters={"wait_time_for_validation_seconds": wait_time_for_validation_seconds},
    )


def files_landed_give(
    *,
    actor: Actor,
    tenant: Tenant,
    utc_date: date,
    source: str = FilesLanded.Source.PERSON,
    note: str = "",
) -> FilesLanded:
    """Record that every file of the UTC date `utc_date` has landed (the daily trigger's gate).

    A person gives it from the page (marketers and operators); a pipeline gives it with a system
    actor (`Actor.system("pipeline:<name>")`, source "pipeline") through the automation API.
    Giving it again for the same date changes nothing and returns the first signal.
    """
    if source not in FilesLanded.Source.values:
        raise ValidationError(
            {"source": gettext("Unknown source %(source)s.") % {"source": repr(source)}}
        )
    if actor.user is not None and actor.user.is_authenticated:
        _membership(actor, tenant, Permission.REQUEST, "signal that files have landed")
    elif source == FilesLanded.Source.PERSON:
        raise ValidationError(
            {"source": gettext("Without a signed-in person the source is a pipeline.")}
        )
    today = utc_now().date()
    if utc_date > today:
        raise ValidationError(
            {
                "utc_date": gettext("%(utc_date)s is in the future (today is %(today)s UTC).")
                % {"utc_date": format(utc_date, "%Y-%m-%d"), "today": format(today, "%Y-%m-%d")}
            }
        )
    existing = FilesLanded.objects.filter(tenant=tenant, utc_date=utc_date).first()
    if existing is not None:
        return existing
    signal = FilesLanded(
        tenant=tenant,
        utc_date=utc_date,
        source=source,
        given_by=actor.user if actor.user is not None and actor.user.is_authenticated else None,
        given_by_label=actor.display[:150],
        given_at=utc_now(),
        note=note.strip()[:300],
    )
    try:
        with transaction.atomic():
            signal.save()
            record_audit_event(
                actor=actor,
                tenant=tenant,
                action="files_landed.given",
                object_type="files_landed",
                object_id=signal.pk,
                summary={"utc_date": utc_date.isoformat(), "source": source, "note": signal.note},
            )
    except IntegrityError:
        # Someone else gave it at the same moment: theirs counts.
        return FilesLanded.objects.get(tenant=tenant, utc_date=utc_date)
    return signal


# -- TalkifAI batch jobs ----------------------------------------------------------------------


def batch_job_register(
    *,
    actor: Actor,
    tenant: Tenant,
    connection: VendorConnection,
    batch_job_id: str,
    name: str = "",
) -> BatchJob:
    """Register a TalkifAI batch job by its id, after checking with TalkifAI that it exists.

    TalkifAI has no endpoint listing jobs, so the tenant keeps its own list. The name defaults to
    the vendor's. Raises ValidationError (nothing saved) for an unusable or unknown id, or when
    TalkifAI cannot be asked.
    """
    _membership(actor, tenant, Permission.REQUEST, "register batch jobs")
    if connection.tenant_id != tenant.pk:
        raise ValidationError({"connection": gettext("That connection belongs to another tenant.")})
    if connection.kind != VendorKind.TALKIFAI or not connection.is_active:
        raise ValidationError({"connection": gettext("Choose an active TalkifAI connection.")})
    try:
        batch_job_id = validate_batch_job_id(batch_job_id)
    except ConfigurationError as error:
        raise ValidationError({"batch_job_id": str(error)}) from None
    if BatchJob.objects.filter(
        tenant=tenant, connection=connection, batch_job_id=batch_job_id
    ).exists():
        raise ValidationError({"batch_job_id": gettext("This job is already registered.")})
    try:
        detail = talkifai_client(connection, connection_secrets(connection)).batch_job_detail(
            batch_job_id
        )
    except talkifai.JobNotFound:
        raise ValidationError(
            {
                "batch_job_id": gettext(
                    "TalkifAI has no batch job %(batch_job_id)s for this API key."
                )
                % {"batch_job_id": repr(batch_job_id)}
            }
        ) from None
    except VendorError as error:
        raise ValidationError(
            gettext("Could not check the job with TalkifAI, so it was not registered: %(advice)s")
            % {"advice": talkifai.advice_for(error)}
        ) from None
    except (ConfigurationError, CredentialDecryptionError, KeyError) as error:
        raise ValidationError(
            {
                "connection": gettext("The connection cannot be used: %(problem)s.")
                % {"problem": error or gettext("its API key is missing")}
            }
        ) from None
    job = BatchJob(
        tenant=tenant,
        connection=connection,
        batch_job_id=batch_job_id,
        name=(name.strip() or detail.name or batch_job_id)[:200],
        registered_by=actor.user,
        registered_at=utc_now(),
    )
    try:
        save_with_audit(
            job,
            actor=actor,
            tenant=tenant,
            action="batch_job.registered",
            object_type="batch_job",
            summary={
                "batch_job_id": batch_job_id,
                "name": job.name,
                "connection": connection.name,
                "vendor_status": detail.status,
            },
        )
    except IntegrityError:
        raise ValidationError(
            {"batch_job_id": gettext("This job is already registered.")}
        ) from None
    return job


def batch_job_remove(*, actor: Actor, batch_job: BatchJob) -> None:
    """Forget a registered job (TalkifAI is not told; its runs stay in the history)."""
    _membership(actor, batch_job.tenant, Permission.REQUEST, "remove batch jobs")
    with transaction.atomic():
        record_audit_event(
            actor=actor,
            tenant=batch_job.tenant,
            action="batch_job.removed",
            object_type="batch_job",
            object_id=batch_job.pk,
            summary={"batch_job_id": batch_job.batch_job_id, "name": batch_job.name},
        )
        batch_job.delete()


def batch_job_start(*, actor: Actor, batch_job: BatchJob, idempotency_key: str) -> Run:
    """An operator starts a scheduled or pending TalkifAI job now, through the run engine.

    One operator is enough (no second person): the job's contacts, agent and script were
    prepared and reviewed in TalkifAI, and starting only moves its start earlier; TalkifAI itself
    refuses to start a job twice (running, completed, failed and cancelled jobs are refused).
    The same idempotency key returns the same run, and a start of this job still under way
    refuses another.
    """
    tenant = batch_job.tenant
    _membership(actor, tenant, Permission.APPROVE, "start batch jobs")
    key = (idempotency_key or "").strip()
    existing = Run.objects.filter(tenant=tenant, idempotency_key=key).first() if key else None
    if existing is not None:
        if existing.operation != START_JOB:
            raise ValidationError(
                gettext("This form was already used for something else; reload it.")
            )
        return existing
    # A page opened earlier (a second tab) may offer a start the job no longer needs: read its
    # status first. When it cannot be read, the start goes ahead: TalkifAI refuses a second
    # start itself, and the engine reads that refusal as a duplicate, not a fault.
    vendor = talkifai_status.batch_job_vendor_status(batch_job=batch_job)
    if vendor.detail is not None and not vendor.detail.can_start_now:
        latest = selectors.batch_job_start_runs(tenant=tenant, batch_job=batch_job).first()
        by = (
            f" (run #{latest.pk} started it here)"
            if latest is not None and latest.state == RunState.SUCCEEDED
            else ""
        )
        raise RunActionError(
            gettext(
                "TalkifAI shows this job %(status)s%(by)s: only a scheduled or pending "
                "job can be started, so nothing was sent. Reload the page to see its "
                "status."
            )
            % {"status": vendor.detail.status, "by": by}
        )
    with transaction.atomic():
        # Serialise starts of this job: lock its registration row.
        BatchJob.objects.select_for_update().get(pk=batch_job.pk)
        under_way = selectors.open_start_run(batch_job=batch_job)
        if under_way is not None:
            raise RunActionError(
                gettext(
                    "A start of this job is already %(state)s (run #%(under_way_pk)s); wait "
                    "for its outcome."
                )
                % {"state": under_way.get_state_display().lower(), "under_way_pk": under_way.pk}
            )
        return runs.run_submit(
            actor=actor,
            tenant=tenant,
            connection=batch_job.connection,
            operation=START_JOB,
            parameters={"batch_job_id": batch_job.batch_job_id, "batch_job_name": batch_job.name},
            idempotency_key=key,
            approval_required=False,
            check_duplicates=False,
        )
