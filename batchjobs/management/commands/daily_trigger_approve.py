from django.core.management.base import BaseCommand, CommandError
from django.http import Http404

from batchjobs import guardrails, services
from batchjobs.management.commands._cli import describe_run
from dashboard.management.commands._common import (
    acting_as,
    confirmed,
    error_text,
    follow,
    tenant_by_slug,
)
from dashboard.runs.services import RunActionError, approval_progress


class Command(BaseCommand):
    help = (
        "Approve a daily trigger request as another operator; it is sent at once. Shows the "
        "request first; approving needs its parameters hash (--parameters-hash) or typing the "
        "hash's first 8 characters on a terminal."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("tenant", help="Tenant slug")
        parser.add_argument("run_id", type=int)
        parser.add_argument("--as", dest="username", required=True, help="Act as this operator.")
        parser.add_argument(
            "--parameters-hash",
            default="",
            help="The hash shown for the request: the approval is bound to those parameters.",
        )
        parser.add_argument("--comment", default="")
        parser.add_argument(
            "--follow", action="store_true", help="Print the run's progress until it settles."
        )
        parser.add_argument("--timeout", type=float, default=120.0)

    def handle(self, *args, **options) -> None:
        tenant = tenant_by_slug(options["tenant"])
        actor, _ = acting_as(options["username"], tenant, "daily_trigger_approve")
        try:
            run = guardrails.daily_run_get(tenant=tenant, run_id=options["run_id"])
        except Http404:
            raise CommandError(
                f"{tenant.name} has no daily trigger run #{options['run_id']}."
            ) from None
        self.stdout.write("\n".join(describe_run(run)))
        seen = options["parameters_hash"].strip()
        if not seen:
            # The hash of what was just printed: if it changes before the answer, the engine
            # refuses the approval.
            shown = run.parameters_hash
            if not confirmed(
                f"Approve and trigger now? Type {shown[:8]} to confirm: ", expected=shown[:8]
            ):
                raise CommandError(
                    "Not approved. Pass --parameters-hash with the hash shown above (or confirm "
                    "on a terminal)."
                )
            seen = shown
        try:
            run = services.daily_trigger_approve(
                actor=actor,
                tenant=tenant,
                run=run,
                parameters_hash_seen=seen,
                comment=options["comment"],
            )
        except RunActionError as error:
            raise CommandError(f"Not approved: {error_text(error)}") from None
        self.stdout.write(
            self.style.SUCCESS(
                approval_progress(run)
                or f"Approved: trigger #{run.pk} is queued and goes to Optimove now."
            )
        )
        if options["follow"]:
            follow(run, timeout=options["timeout"], out=self.stdout, describe=describe_run)
