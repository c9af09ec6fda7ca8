import uuid

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from batchjobs import services
from batchjobs.management.commands._cli import describe_run
from dashboard.management.commands._common import acting_as, error_text, follow, tenant_by_slug
from dashboard.runs.services import RunActionError


class Command(BaseCommand):
    help = (
        "Request today's Optimove daily trigger as a member (same guardrails as the page). With "
        "approval on, another operator approves it (daily_trigger_approve)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("tenant", help="Tenant slug")
        parser.add_argument("--as", dest="username", required=True, help="Act as this member.")
        parser.add_argument(
            "--attest-files-uploaded",
            action="store_true",
            help="Required: you confirm that all of today's files have finished uploading.",
        )
        parser.add_argument(
            "--wait",
            type=int,
            default=None,
            help="WaitTimeForValidationSeconds, 0-30 (Optimove waits 5 s plus anything above 5).",
        )
        parser.add_argument(
            "--idempotency-key",
            default="",
            help="Re-running with the same key returns the same request (default: a new one).",
        )
        parser.add_argument(
            "--follow", action="store_true", help="Print the run's progress until it settles."
        )
        parser.add_argument("--timeout", type=float, default=120.0)

    def handle(self, *args, **options) -> None:
        tenant = tenant_by_slug(options["tenant"])
        actor, _ = acting_as(options["username"], tenant, "daily_trigger_request")
        if not options["attest_files_uploaded"]:
            raise CommandError(
                "Pass --attest-files-uploaded to confirm that all of today's files have finished "
                "uploading: Optimove does not check it, and triggers once per UTC day."
            )
        try:
            run = services.daily_trigger_request(
                actor=actor,
                tenant=tenant,
                wait_time_for_validation_seconds=options["wait"],
                idempotency_key=options["idempotency_key"] or uuid.uuid4().hex,
                files_uploaded_attested=True,
            )
        except (ValidationError, RunActionError) as error:
            raise CommandError(f"Not requested: {error_text(error)}") from None
        self.stdout.write("\n".join(describe_run(run)))
        if run.state == "awaiting_approval":
            self.stdout.write(
                self.style.SUCCESS(
                    f"Requested. Another operator approves it with: manage.py "
                    f"daily_trigger_approve {tenant.slug} {run.pk} --as <operator> "
                    f"--parameters-hash {run.parameters_hash}"
                )
            )
        elif options["follow"]:
            follow(run, timeout=options["timeout"], out=self.stdout, describe=describe_run)
