"""factory-boy factories for every model."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.db.models import Max

from dashboard.api.models import IdempotencyRecord
from dashboard.audit.trail import REDACTED, Actor, record_audit_event
from dashboard.clock import utc_now
from dashboard.models import (
    SECRET_FIELDS,
    AuditEvent,
    ConnectionSecret,
    Membership,
    Role,
    Tenant,
    VendorConnection,
    VendorKind,
)
from dashboard.runs.models import Approval, Operation, Run, RunAttempt
from dashboard.runs.operations import operation_for
from dashboard.runs.services import parameters_hash as run_parameters_hash
from dashboard.runs.services.submit import run_titles
from dashboard.runs.states import RunState
from dashboard.tenancy.crypto import encrypt_secret

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password(PASSWORD)


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    name = factory.Sequence(lambda n: f"Brand {n}")
    slug = factory.Sequence(lambda n: f"brand-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    tenant = factory.SubFactory(TenantFactory)
    role = Role.MARKETER


class VendorConnectionFactory(factory.django.DjangoModelFactory):
    """A connection with every secret its kind needs (`secret_values` overrides them)."""

    class Meta:
        model = VendorConnection
        skip_postgeneration_save = True

    tenant = factory.SubFactory(TenantFactory)
    kind = VendorKind.OPTIMOVE_BATCH
    name = factory.Sequence(lambda n: f"Connection {n}")
    base_url = "https://api.example.com"
    options = factory.LazyAttribute(
        lambda connection: (
            {"key_role": "ApiRole"} if connection.kind == VendorKind.OPTIMOVE_BATCH else {}
        )
    )

    @factory.post_generation
    def secret_values(connection, create, extracted, **kwargs):
        if not create:
            return
        values = extracted or {}
        for name in SECRET_FIELDS[connection.kind]:
            ConnectionSecretFactory(
                connection=connection,
                name=name,
                plaintext=values.get(name, f"test-{name}-{connection.pk}-SECRETVALUE"),
            )


class ConnectionSecretFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConnectionSecret
        exclude = ["plaintext"]

    connection = factory.SubFactory(VendorConnectionFactory, secret_values={})
    name = "api_key"
    plaintext = "test-api-key-SECRETVALUE"
    encrypted_value = factory.LazyAttribute(lambda secret: encrypt_secret(secret.plaintext))
    hint = factory.LazyAttribute(lambda secret: secret.plaintext[-4:])
    set_at = factory.Faker("date_time", tzinfo=__import__("datetime").UTC)


class AuditEventFactory(factory.django.DjangoModelFactory):
    """Audit rows only come into being through the audit service, chained."""

    class Meta:
        model = AuditEvent

    tenant = factory.SubFactory(TenantFactory)
    action = "test.event"
    object_type = "thing"
    object_id = factory.Sequence(str)
    summary = factory.LazyFunction(dict)

    @classmethod
    def _create(
        cls,
        model_class,
        tenant=None,
        action="",
        object_type="",
        object_id="",
        summary=None,
        **kwargs,
    ):
        return record_audit_event(
            actor=Actor.system("factory"),
            tenant=tenant,
            action=action,
            object_type=object_type,
            object_id=object_id,
            summary=summary,
        )


class RunFactory(factory.django.DjangoModelFactory):
    """A TalkifAI "start batch job" run awaiting approval; pass `state` and friends to move it.

    The connection belongs to the run's tenant, and the hash matches the parameters, as the engine
    would have made them.
    """

    class Meta:
        model = Run

    tenant = factory.SubFactory(TenantFactory)
    connection = factory.SubFactory(
        VendorConnectionFactory,
        tenant=factory.SelfAttribute("..tenant"),
        kind=VendorKind.TALKIFAI,
    )
    operation = Operation.TALKIFAI_START_BATCH_JOB
    parameters = factory.Sequence(
        lambda n: {"batch_job_id": f"job-{n}", "batch_job_name": f"Winback {n}"}
    )
    parameters_hash = factory.LazyAttribute(
        lambda run: run_parameters_hash(
            operation=run.operation, connection_id=run.connection.pk, parameters=run.parameters
        )
    )
    idempotency_key = factory.Sequence(lambda n: f"idem-{n}")
    # Named as run_submit names a run: by its operation, with the connection's name of the day.
    title = factory.LazyAttribute(
        lambda run: run_titles(
            operation_for(run.operation),
            [
                Run(
                    operation=run.operation,
                    connection=run.connection,
                    parameters=run.parameters,
                    utc_date=getattr(run, "utc_date", None),
                )
            ],
        )[0]
    )
    connection_name = factory.LazyAttribute(lambda run: run.connection.name)
    state = RunState.AWAITING_APPROVAL
    requested_by = factory.SubFactory(UserFactory)
    requested_by_label = factory.LazyAttribute(
        lambda run: run.requested_by.get_username() if run.requested_by else ""
    )
    requested_at = factory.LazyFunction(utc_now)
    approval_required = True
    approval_expires_at = factory.LazyFunction(lambda: utc_now() + timedelta(hours=2))


class ApprovalFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Approval

    run = factory.SubFactory(RunFactory)
    decided_by = factory.SubFactory(UserFactory)
    decision = Approval.Decision.APPROVED
    parameters_hash = factory.LazyAttribute(lambda approval: approval.run.parameters_hash)
    comment = ""
    decided_at = factory.LazyFunction(utc_now)
    expires_at = factory.LazyAttribute(lambda approval: approval.run.approval_expires_at)


class RunAttemptFactory(factory.django.DjangoModelFactory):
    """A send attempt with a stored exchange, redacted as the HTTP layer stores it."""

    class Meta:
        model = RunAttempt

    run = factory.SubFactory(RunFactory)
    number = factory.LazyAttribute(
        lambda attempt: (attempt.run.attempts.aggregate(Max("number"))["number__max"] or 0) + 1
    )
    purpose = RunAttempt.Purpose.SEND
    started_at = factory.LazyFunction(utc_now)
    finished_at = factory.LazyAttribute(lambda attempt: attempt.started_at)
    latency_ms = 120.0
    status_code = 200
    exchange = factory.LazyAttribute(
        lambda attempt: {
            "method": "POST",
            "url": "https://vendor.example.com/api/v1/batch-jobs/job-1/start",
            "request_headers": {"Authorization": REDACTED, "Content-Type": "application/json"},
            "request_body": "{}",
            "status_code": attempt.status_code,
            "response_headers": {"Content-Type": "application/json"},
            "response_body": '{"status": "running"}' if attempt.status_code else None,
            "latency_ms": attempt.latency_ms or 0.0,
            "error": "",
        }
    )
    failure_class = ""
    failure_code = ""
    outcome = "TalkifAI started the batch job."


class IdempotencyRecordFactory(factory.django.DjangoModelFactory):
    """An API Idempotency-Key record. `created_at` may be given (the field is auto_now_add, so
    it is written after the insert): a record of any age, for the retention tests."""

    class Meta:
        model = IdempotencyRecord

    tenant = factory.SubFactory(TenantFactory)
    key = factory.Sequence(lambda n: f"key-{n}")
    request_hash = factory.Sequence(lambda n: hashlib.sha256(f"request {n}".encode()).hexdigest())
    run = None

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        created_at = kwargs.pop("created_at", None)
        record = super()._create(model_class, *args, **kwargs)
        if created_at is not None:
            model_class.objects.filter(pk=record.pk).update(created_at=created_at)
            record.created_at = created_at
        return record
