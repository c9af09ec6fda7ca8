from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from dashboard.management.commands._common import command_actor, tenant_by_slug
from dashboard.models import Role
from dashboard.tenancy import services


class Command(BaseCommand):
    help = "Give a user a role in a tenant (creating the user with --create)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("tenant", help="Tenant slug")
        parser.add_argument("username")
        parser.add_argument("role", help=f"One of: {', '.join(Role.values)}")
        parser.add_argument(
            "--create",
            action="store_true",
            help="Create the user (password from DJANGO_PASSWORD or unusable).",
        )

    def handle(self, *args, **options) -> None:
        import os

        tenant = tenant_by_slug(options["tenant"])
        if options["role"] not in Role.values:
            raise CommandError(
                f"Unknown role {options['role']!r}; choose one of {', '.join(Role.values)}."
            )
        User = get_user_model()
        user = User.objects.filter(username=options["username"]).first()
        if user is None:
            if not options["create"]:
                raise CommandError(f"No user {options['username']!r}; pass --create to create it.")
            user = services.user_create(
                username=options["username"],
                password=os.environ.get("DJANGO_PASSWORD"),
                actor=command_actor("add_member"),
            )
        try:
            services.membership_add(
                actor=command_actor("add_member"), tenant=tenant, user=user, role=options["role"]
            )
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from None
        self.stdout.write(
            self.style.SUCCESS(f"{user.get_username()} is now {options['role']} of {tenant.name}.")
        )
