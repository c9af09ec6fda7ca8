from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from dashboard.management.commands._common import acting_as, tenant_by_slug
from dashboard.models import VendorConnection
from dashboard.tenancy import services


class Command(BaseCommand):
    help = (
        "Test a connection with a call that changes nothing at the vendor (a read where the "
        "vendor has one, else DNS + TCP + TLS only; never a trigger) and audit the result. "
        "--as must be an admin of the tenant. Exits non-zero when the test fails."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("tenant", help="The tenant's slug.")
        parser.add_argument("connection", help="The connection's name.")
        parser.add_argument(
            "--as", dest="acting_as", required=True, help="An admin of the tenant (audited)."
        )

    def handle(self, *args, **options) -> None:
        tenant = tenant_by_slug(options["tenant"])
        actor, _membership = acting_as(options["acting_as"], tenant, "test_connection")
        connection = VendorConnection.objects.filter(
            tenant=tenant, name=options["connection"]
        ).first()
        if connection is None:
            raise CommandError(f"{tenant.name} has no connection named {options['connection']!r}.")
        try:
            result = services.connection_test(actor=actor, connection=connection)
        except PermissionDenied as error:
            raise CommandError(f"Not tested: {error}") from None
        if not result.ok:
            raise CommandError(f"Connection test failed: {result.checked}")
        self.stdout.write(self.style.SUCCESS(f"Connection test passed: {result.checked}"))
