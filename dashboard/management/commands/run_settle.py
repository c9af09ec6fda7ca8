"""Settle a run whose outcome is unknown and that waits for a person, as its page does: mark it
as sent, or send it again, with the reason (what the vendor's own UI shows)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from dashboard import plugins
from dashboard.management.commands._common import acting_user
from dashboard.models import Membership, Permission
from dashboard.runs import services
from dashboard.runs.models import Run

COMMAND = "run_settle"


class Command(BaseCommand):
    help = (
        "Settle a run (or an Altcraft chunk's run) whose outcome is unknown: --mark-as-sent when "
        "the vendor shows it went through, --send-again when it shows it did not, always with "
        "--reason. Operators and admins, as on the run's page; audited as the --as member and "
        "the operating-system user."
    )

    def add_arguments(self, parser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--run", type=int, help="The run's number.")
        # Other ways to name a run, from the apps (AppConfig.run_lookups), e.g. Altcraft's
        # --chunk LAUNCH:NUMBER.
        for name, lookup in plugins.named_contributions("run_lookups").items():
            which.add_argument(f"--{name}", metavar=lookup.metavar, help=lookup.help)
        decision = parser.add_mutually_exclusive_group(required=True)
        decision.add_argument("--mark-as-sent", action="store_true")
        decision.add_argument("--send-again", action="store_true")
        parser.add_argument(
            "--reason", required=True, help="How you know (e.g. what the vendor's UI shows)."
        )
        parser.add_argument("--as", dest="username", required=True, help="Act as this member.")

    def handle(self, *args, **options) -> None:
        actor = acting_user(options["username"], COMMAND)
        tenants = Membership.objects.filter(user=actor.user).values("tenant_id")
        run = self._run(options, tenants)
        membership = Membership.objects.get(user=actor.user, tenant_id=run.tenant_id)
        if not membership.can(Permission.APPROVE):
            raise CommandError(
                f"{options['username']} ({membership.get_role_display()}) cannot settle runs: "
                "operators and admins do."
            )
        try:
            if options["mark_as_sent"]:
                services.run_mark_as_sent(actor=actor, run=run, comment=options["reason"])
                done = "marked as sent, with your reason recorded"
            else:
                services.run_send_again(actor=actor, run=run, comment=options["reason"])
                done = "queued to be sent again"
        except services.RunActionError as error:
            raise CommandError(f"Run #{run.pk} was not changed: {error}") from None
        run.refresh_from_db()
        self.stdout.write(
            self.style.SUCCESS(f"Run #{run.pk} {done} (now {run.get_state_display().lower()}).")
        )

    def _run(self, options, tenants) -> Run:
        runs = Run.objects.filter(tenant_id__in=tenants).select_related("tenant")
        if options["run"] is not None:
            run = runs.filter(pk=options["run"]).first()
            if run is None:
                raise CommandError(f"No run #{options['run']} in your tenants.")
            return run
        for name, lookup in plugins.named_contributions("run_lookups").items():
            if options.get(name) is not None:
                try:
                    return lookup(options[name], tenants=tenants)
                except LookupError as error:
                    raise CommandError(str(error)) from None
        raise CommandError("Name the run.")
