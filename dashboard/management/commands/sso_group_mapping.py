from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from dashboard.management.commands._common import acting_as, error_text, tenant_by_slug
from dashboard.sso import selectors, services


class Command(BaseCommand):
    help = (
        "List, set or remove a tenant's single sign-on group mappings (IdP group -> role). "
        "Applies at each member's next login, or at once with sso_sync. --as must be an admin "
        "of the tenant (audited)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("tenant", help="The tenant's slug.")
        parser.add_argument("action", choices=["list", "set", "remove"])
        parser.add_argument("group", nargs="?", default="", help="The IdP group's name.")
        parser.add_argument("role", nargs="?", default="", help="The role (for set).")
        parser.add_argument("--as", dest="acting_as", help="An admin of the tenant.")

    def handle(self, *args, **options) -> None:
        tenant = tenant_by_slug(options["tenant"])
        if options["action"] == "list":
            for mapping in selectors.mapping_list(tenant=tenant):
                self.stdout.write(f"{mapping.group}\t{mapping.role}\t{mapping.created_by_label}")
            return
        if not options["acting_as"]:
            raise CommandError("Say who is acting with --as (an admin of the tenant).")
        actor, _membership = acting_as(options["acting_as"], tenant, "sso_group_mapping")
        try:
            if options["action"] == "set":
                mapping = services.mapping_set(
                    actor=actor, tenant=tenant, group=options["group"], role=options["role"]
                )
                self.stdout.write(
                    self.style.SUCCESS(f"Group {mapping.group} gives the role {mapping.role}.")
                )
            else:
                services.mapping_remove(actor=actor, tenant=tenant, group=options["group"])
                self.stdout.write(
                    self.style.SUCCESS(f"Group {options['group']} no longer gives a role.")
                )
        except (ValidationError, PermissionDenied) as error:
            raise CommandError(f"Nothing changed: {error_text(error)}") from None
