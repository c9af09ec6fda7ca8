from django.core.management.base import BaseCommand

from batchjobs import guardrails
from batchjobs.management.commands._cli import describe_run
from dashboard.management.commands._common import acting_as, tenant_by_slug


class Command(BaseCommand):
    help = "Show whether the tenant's Optimove daily trigger can be requested now, and why not."

    def add_arguments(self, parser) -> None:
        parser.add_argument("tenant", help="Tenant slug")
        parser.add_argument(
            "--as", dest="username", help="Also show what this member's role allows."
        )

    def handle(self, *args, **options) -> None:
        tenant = tenant_by_slug(options["tenant"])
        membership = None
        if options["username"]:
            _, membership = acting_as(options["username"], tenant, "daily_trigger_status")
        status = guardrails.daily_trigger_status(tenant=tenant, membership=membership)
        write = self.stdout.write
        write(f"Tenant: {tenant.name} ({tenant.slug})")
        write(
            f"UTC date: {status.utc_date:%Y-%m-%d} (now {status.now:%H:%M:%S} UTC; next UTC "
            f"midnight in {status.time_to_midnight})"
        )
        write(
            "Approval: "
            + (
                f"required (valid {status.approval_valid_minutes} min or until 00:00 UTC)"
                if status.approval_required
                else "off: operators trigger directly"
            )
        )
        connection = status.connection
        if connection is None:
            write(
                f"Connection: {status.connection_count or 'no'} active Optimove batch connection(s)"
            )
        else:
            write(
                f"Connection: {connection.name}, key role {status.key_role}"
                + (", key expired" if status.key_expired else "")
                + (f"; last error: {connection.last_error}" if connection.last_error else "")
            )
        write(
            "Rate window: "
            + (
                f"{status.window_remaining} left (ends {status.window_ends_at:%H:%M:%S} UTC)"
                if status.window_ends_at
                else "free"
            )
        )
        if status.files_landed:
            landed = status.files_landed
            write(
                f"Files landed: signalled by {landed.given_by_label} at {landed.given_at:%H:%M} UTC"
            )
        else:
            write(
                "Files landed: "
                + (
                    "required, not signalled yet"
                    if status.files_landed_required
                    else "not required"
                )
            )
        today = status.triggered_today or status.latest_today
        if today is None:
            write("Today's trigger: none yet")
        else:
            approval = guardrails.approved_by(today)
            write(
                f"Today's trigger: #{today.pk} {today.get_state_display().lower()}, requested by "
                f"{today.requested_by_label}"
                + (f", approved by {approval.decided_by.get_username()}" if approval else "")
            )
        if status.open_run is not None:
            write("Open:")
            for line in describe_run(status.open_run):
                write(f"  {line}")
        if status.can_request:
            write(self.style.SUCCESS("Can request now: yes"))
        else:
            write(self.style.WARNING("Can request now: no"))
            for reason in status.reasons:
                write(f"  - {reason}")
