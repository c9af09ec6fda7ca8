import uuid

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from batchjobs import selectors, services
from batchjobs.management.commands._cli import describe_run
from batchjobs.vendors.talkifai import status as talkifai_status
from dashboard.management.commands._common import (
    acting_as,
    confirmed,
    error_text,
    follow,
    tenant_by_slug,
)
from dashboard.runs.services import RunActionError


class Command(BaseCommand):
    help = (
        "Start a registered TalkifAI batch job now, as an operator (same rules as the page): "
        "shows the job's status first and asks for confirmation (--yes in scripts)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("tenant", help="Tenant slug")
        parser.add_argument("batch_job_id")
        parser.add_argument("--as", dest="username", required=True, help="Act as this operator.")
        parser.add_argument("--connection", help="The TalkifAI connection's name, if several.")
        parser.add_argument(
            "--register",
            action="store_true",
            help="Register the job first when it is not registered yet.",
        )
        parser.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")
        parser.add_argument(
            "--follow", action="store_true", help="Print the run's progress until it settles."
        )
        parser.add_argument("--timeout", type=float, default=60.0)

    def handle(self, *args, **options) -> None:
        tenant = tenant_by_slug(options["tenant"])
        actor, _ = acting_as(options["username"], tenant, "talkifai_start_job")
        job = self._job(tenant, actor, options)
        status = talkifai_status.batch_job_vendor_status(batch_job=job)
        self.stdout.write(f"Batch job {job.name} ({job.batch_job_id}) on {job.connection.name}")
        if status.problem:
            raise CommandError(f"Status unavailable: {status.problem} Nothing was started.")
        detail = status.detail
        self.stdout.write(
            f"  status at TalkifAI: {detail.status}"
            + (
                f", scheduled for {detail.scheduled_at:%Y-%m-%d %H:%M} UTC"
                if detail.scheduled_at
                else ""
            )
            + (f", {detail.contacts_total} contacts" if detail.contacts_total is not None else "")
        )
        if not detail.can_start_now:
            raise CommandError(
                f"Only scheduled or pending jobs can be started; this one is {detail.status}."
            )
        if not options["yes"] and not confirmed(
            "Start calling now? Type yes to confirm: ", expected="yes"
        ):
            raise CommandError("Not started. Pass --yes (or confirm on a terminal).")
        try:
            run = services.batch_job_start(
                actor=actor, batch_job=job, idempotency_key=uuid.uuid4().hex
            )
        except (ValidationError, RunActionError) as error:
            raise CommandError(f"Not started: {error_text(error)}") from None
        self.stdout.write(
            self.style.SUCCESS(f"Start requested (run #{run.pk}); a worker sends it now.")
        )
        if options["follow"]:
            follow(run, timeout=options["timeout"], out=self.stdout, describe=describe_run)
        else:
            self.stdout.write("\n".join(describe_run(run)))

    def _job(self, tenant, actor, options):
        jobs = selectors.batch_job_list(tenant=tenant).filter(batch_job_id=options["batch_job_id"])
        if options["connection"]:
            jobs = jobs.filter(connection__name=options["connection"])
        jobs = list(jobs)
        if len(jobs) == 1:
            return jobs[0]
        if len(jobs) > 1:
            raise CommandError("Several connections have this job; name one with --connection.")
        if not options["register"]:
            raise CommandError(
                f"{tenant.name} has not registered batch job {options['batch_job_id']!r}; "
                "register it on the Batch calls page, or pass --register."
            )
        connections = selectors.talkifai_connection_list(tenant=tenant)
        if options["connection"]:
            connections = connections.filter(name=options["connection"])
        connections = list(connections)
        if len(connections) != 1:
            raise CommandError("Name the TalkifAI connection with --connection.")
        try:
            return services.batch_job_register(
                actor=actor,
                tenant=tenant,
                connection=connections[0],
                batch_job_id=options["batch_job_id"],
            )
        except (ValidationError, RunActionError) as error:
            raise CommandError(f"Not registered: {error_text(error)}") from None
