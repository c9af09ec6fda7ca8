import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from dashboard.chat_webhooks import selectors, services
from dashboard.management.commands._common import acting_as, error_text, tenant_by_slug
from dashboard.models import Permission


class Command(BaseCommand):
    help = (
        "Show, set or remove a tenant's chat webhooks (Slack-compatible, Microsoft Teams) where "
        "approval requests and outcomes are posted, or post a test message. A URL is a secret: "
        "pass '-' to read it from standard input (it then stays out of the process list and the "
        "shell history). --as must be an admin of the tenant (audited with the reason)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("tenant", help="The tenant's slug.")
        parser.add_argument("action", choices=["show", "set", "test"])
        parser.add_argument("--slack-url", help="The Slack URL, or '-' to read it from stdin.")
        parser.add_argument("--teams-url", help="The Teams URL, or '-' to read it from stdin.")
        parser.add_argument("--remove-slack", action="store_true")
        parser.add_argument("--remove-teams", action="store_true")
        parser.add_argument("--reason", default="", help="Why they change (audited).")
        parser.add_argument("--as", dest="acting_as", help="An admin of the tenant.")

    def handle(self, *args, **options) -> None:
        tenant = tenant_by_slug(options["tenant"])
        if options["action"] == "show":
            for kind, hint in selectors.chat_webhook_state(tenant=tenant).items():
                self.stdout.write(f"{services.KIND_LABELS[kind]}: {hint or 'not set'}")
            return
        if not options["acting_as"]:
            raise CommandError("--as is required to change or test the chat webhooks.")
        actor, membership = acting_as(options["acting_as"], tenant, "chat_webhook")
        if not membership.can(Permission.MANAGE):
            raise CommandError(
                f"{options['acting_as']} ({membership.get_role_display()}) cannot manage the "
                "tenant's settings."
            )
        try:
            if options["action"] == "test":
                targets = services.chat_webhook_test(actor=actor, tenant=tenant)
                self.stdout.write(
                    self.style.SUCCESS(f"A test message is on its way to {', '.join(targets)}.")
                )
                return
            webhook = services.chat_webhooks_set(
                actor=actor,
                tenant=tenant,
                reason=options["reason"],
                slack_url="" if options["remove_slack"] else self._url(options["slack_url"]),
                teams_url="" if options["remove_teams"] else self._url(options["teams_url"]),
            )
        except ValidationError as error:
            raise CommandError(f"Nothing changed: {error_text(error)}") from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Chat webhooks saved. Slack: {webhook.slack_url_hint or 'not set'}; "
                f"Teams: {webhook.teams_url_hint or 'not set'}."
            )
        )

    def _url(self, value: str | None) -> str | None:
        if value == "-":
            return sys.stdin.readline().strip()
        return value
