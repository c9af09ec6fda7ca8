"""Load the demo tenant: one user per role and a connection to every vendor sandbox.

Idempotent: running it again changes nothing that exists. Only for `make demo`: the passwords are
printed on purpose and the connections point at the local sandboxes.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand

from dashboard import services
from dashboard.audit import Actor
from dashboard.management.commands._common import command_actor, command_label
from dashboard.models import Membership, Role, Tenant, VendorConnection
from dashboard.sandboxes import sandbox_base_url

DEMO_PASSWORD = "triggerdesk-demo"  # noqa: S105 - printed for the demo's users on purpose
DEMO_USERS = [
    ("mia", Role.MARKETER, "prepares and requests triggers"),
    ("oscar", Role.OPERATOR, "approves and runs daily triggers"),
    ("olga", Role.OPERATOR, "a second operator (four eyes)"),
    ("aude", Role.AUDITOR, "reads history and the audit trail"),
    ("ada", Role.ADMIN, "tenant settings, members, connections; Django admin"),
]
# The TalkifAI sandbox's jobs, one in each status. Registered under names without that status:
# the sandbox's own names ("Appointment reminders (running)") go stale as the jobs move on.
DEMO_BATCH_JOBS = [
    ("job-scheduled-001", "Spring renewals"),
    ("job-pending-001", "Win-back calls"),
    ("job-running-001", "Appointment reminders"),
    ("job-completed-001", "January survey"),
    ("job-failed-001", "Payment follow-up"),
    ("job-cancelled-001", "Holiday promo"),
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
        self._register_batch_jobs(tenant)
        from campaigns.event_generators.demo import register_demo_event_generators

        register_demo_event_generators(
            tenant, VendorConnection.objects.get(tenant=tenant, name="Optimove campaigns (sandbox)")
        )
        self._register_altcraft_triggers(tenant)
        self.stdout.write(
            self.style.SUCCESS(f"Demo tenant ready: {tenant.name} (/t/{tenant.slug}/).")
        )

    def _register_batch_jobs(self, tenant: Tenant) -> None:
        """Register the TalkifAI sandbox's jobs (the vendor has no list endpoint), checking each
        with the sandbox as a person registering it would; skipped when the sandbox is down."""
        from batchjobs.models import BatchJob
        from batchjobs.services import batch_job_register

        connection = VendorConnection.objects.get(tenant=tenant, name="TalkifAI (sandbox)")
        marketer = Actor(
            user=get_user_model().objects.get(username="mia"),
            label=command_label("setup_demo", acting_as="mia"),
        )
        for batch_job_id, name in DEMO_BATCH_JOBS:
            if BatchJob.objects.filter(tenant=tenant, batch_job_id=batch_job_id).exists():
                continue
            try:
                batch_job_register(
                    actor=marketer,
                    tenant=tenant,
                    connection=connection,
                    batch_job_id=batch_job_id,
                    name=name,
                )
            except ValidationError as error:
                self.stdout.write(
                    f"Batch job {batch_job_id} not registered: {' '.join(error.messages)}"
                )

    def _register_altcraft_triggers(self, tenant: Tenant) -> None:
        """The Altcraft sandbox's active trigger campaigns, for bulk launches and imports."""
        from campaigns.altcraft_launches.models import AltcraftTrigger
        from campaigns.altcraft_launches.services import trigger_register

        connection = VendorConnection.objects.get(tenant=tenant, name="Altcraft (sandbox)")
        admin = Actor(
            user=get_user_model().objects.get(username="ada"),
            label=command_label("setup_demo", acting_as="ada"),
        )
        for trigger_id, name, content_fields, resource_id in (
            (8, "Abandoned cart", ["page"], None),
            (96, "Registration form", ["page"], 21),
        ):
            if AltcraftTrigger.objects.filter(tenant=tenant, trigger_id=trigger_id).exists():
                continue
            trigger_register(
                actor=admin,
                tenant=tenant,
                connection=connection,
                trigger_id=trigger_id,
                name=name,
                resource_id=resource_id,
                content_fields=content_fields,
            )
