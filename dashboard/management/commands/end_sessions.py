from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from dashboard.login_sessions import services
from dashboard.management.commands._common import acting_as, error_text, tenant_by_slug
from dashboard.models import Membership


class Command(BaseCommand):
    help = (
        "End every login session of a member of a tenant: their browsers are logged out at once "
        "(sessions are the person's, so this logs them out of every tenant). --as must be an "
        "admin of the tenant; audited in that tenant with the OS user."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("tenant", help="The tenant's slug.")
        parser.add_argument("--username", required=True, help="The member whose sessions end.")
        parser.add_argument("--as", dest="acting_as", required=True, help="An admin of the tenant.")

    def handle(self, *args, **options) -> None:
        tenant = tenant_by_slug(options["tenant"])
        actor, _membership = acting_as(options["acting_as"], tenant, "end_sessions")
        user = get_user_model().objects.filter(username=options["username"]).first()
        membership = (
            Membership.objects.select_related("user", "tenant")
            .filter(tenant=tenant, user=user)
            .first()
            if user is not None
            else None
        )
        if membership is None:
            raise CommandError(
                f"Nothing ended: {tenant.name} has no member named {options['username']!r}."
            )
        try:
            count = services.member_sessions_end(actor=actor, membership=membership)
        except PermissionDenied as error:
            raise CommandError(f"Nothing ended: {error_text(error)}") from None
        self.stdout.write(
            self.style.SUCCESS(
                f"{count} session(s) of {membership.user.get_username()} ended (audited in "
                f"{tenant.name})."
            )
        )
