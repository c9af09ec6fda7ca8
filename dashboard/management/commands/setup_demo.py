"""Load the demo tenant: one user per role and a connection to every vendor sandbox.

Idempotent: running it again changes nothing that exists. Only for `make demo`: the passwords are
printed on purpose and the connections point at the local sandboxes.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from dashboard import plugins
from dashboard.management.commands._common import command_actor
from dashboard.models import Membership, Role, Tenant, VendorConnection
from dashboard.ops.sandboxes import sandbox_base_url
from dashboard.tenancy import services

DEMO_PASSWORD = "triggerdesk-demo"  # noqa: S105 - printed for the demo's users on purpose
DEMO_USERS = [
    ("mia", Role.MARKETER, "prepares and requests triggers"),
    ("oscar", Role.OPERATOR, "approves and runs daily triggers"),
    ("olga", Role.OPERATOR, "a second operator (four eyes)"),
    ("aude", Role.AUDITOR, "reads history and the audit trail"),
    ("ada", Role.ADMIN, "tenant settings, members, connections; Django admin"),
]
DEMO_CONNECTIONS = [
    (
        "optimove_batch",
        "Optimove batch (sandbox)",
        {"api_key": "sandbox-optimove-daily-key"},
        {"key_role": "ApiRole"},
    ),
    (
        "optimove_campaigns",
        "Optimove campaigns (sandbox)",
        {"api_key": "sandbox-optimove-api-key", "brand_key": "sandbox-optimove-brand-key"},
        {},
    ),
    ("altcraft", "Altcraft (sandbox)", {"token": "sandbox-altcraft-token"}, {}),
    ("talkifai", "TalkifAI (sandbox)", {"api_key": "sandbox-talkifai-key"}, {}),
]


class Command(BaseCommand):
    help = (
        "Create the demo tenant, its users (one per role) and connections to the vendor sandboxes."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--print-logins", action="store_true", help="Only print the demo logins."
        )

    def handle(self, *args, **options) -> None:
        if options["print_logins"]:
            self.stdout.write(f"Logins (password for all: {DEMO_PASSWORD}):")
            for username, role, what in DEMO_USERS:
                self.stdout.write(f"  {username:<6} {role:<9} {what}")
            return
        actor = command_actor("setup_demo")
        tenant = Tenant.objects.filter(slug="demo").first() or services.tenant_create(
            actor=actor, name="Demo Brand", slug="demo"
        )
        User = get_user_model()
        for username, role, _ in DEMO_USERS:
            user = User.objects.filter(username=username).first()
            if user is None:
                user = services.user_create(
                    username=username,
                    password=DEMO_PASSWORD,
                    email=f"{username}@example.com",
                    actor=actor,
                )
                if role == Role.ADMIN:
                    user.is_staff = user.is_superuser = True
                    user.save(update_fields=["is_staff", "is_superuser"])
            if not Membership.objects.filter(user=user, tenant=tenant).exists():
                services.membership_add(actor=actor, tenant=tenant, user=user, role=role)
        for kind, name, secrets, connection_options in DEMO_CONNECTIONS:
            if not VendorConnection.objects.filter(tenant=tenant, name=name).exists():
                services.connection_create(
                    actor=actor,
                    tenant=tenant,
                    kind=kind,
                    name=name,
                    base_url=sandbox_base_url(settings.SANDBOX_BASE_URL, kind),
                    secrets=secrets,
                    options=connection_options,
                )
        # Each feature app's demo data (AppConfig.demo_data), in INSTALLED_APPS order.
        for register_demo_data in plugins.contributions("demo_data"):
            register_demo_data(tenant, self.stdout)
        self.stdout.write(
            self.style.SUCCESS(f"Demo tenant ready: {tenant.name} (/t/{tenant.slug}/).")
        )
