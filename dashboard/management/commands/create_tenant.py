from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from dashboard.management.commands._common import command_actor
from dashboard.tenancy import services


class Command(BaseCommand):
    help = "Create a tenant (one brand or vendor account)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("--slug", default="")
        parser.add_argument(
            "--no-approval", action="store_true", help="Daily triggers need no second person."
        )

    def handle(self, *args, **options) -> None:
        try:
            tenant = services.tenant_create(
                actor=command_actor("create_tenant"),
                name=options["name"],
                slug=options["slug"],
                approval_required=not options["no_approval"],
            )
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from None
        self.stdout.write(self.style.SUCCESS(f"Created tenant {tenant.name} (slug {tenant.slug})."))
