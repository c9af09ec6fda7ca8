from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from dashboard.approval_policies import selectors, services
from dashboard.management.commands._common import acting_as, error_text, tenant_by_slug

FIELDS = {
    "name": "name",
    "operation": "operation",
    "recipients_above": "recipients_above",
    "topics_above": "topics_above",
    "audience_above": "audience_above",
    "office_days": "office_days",
    "office_start": "office_start",
    "office_end": "office_end",
    "office_zone": "office_zone",
    "approvals": "approvals_needed",
    "valid_minutes": "valid_minutes",
}


def _by_field(error: Exception) -> str:
    """A refusal with the option each problem is about ("--topics-above: ...")."""
    if isinstance(error, ValidationError) and hasattr(error, "error_dict"):
        options = {field: option for option, field in FIELDS.items()}
        return "; ".join(
            f"--{options.get(field, field).replace('_', '-')}: {' '.join(errors[0].messages)}"
            for field, errors in error.error_dict.items()
        )
    return error_text(error)


class Command(BaseCommand):
    help = (
        "List, add, change or delete a tenant's approval policies (the same rules and audit rows "
        "as the policies page). Changes need --as, an admin of the tenant."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("tenant", help="The tenant's slug.")
        parser.add_argument("action", choices=["list", "add", "change", "delete"])
        parser.add_argument("--as", dest="acting_as", help="An admin of the tenant.")
        parser.add_argument("--name", help="The policy's name (change and delete find it so).")
        parser.add_argument("--rename", help="change: its new name.")
        parser.add_argument("--operation", help="An operation, or leave it out for any.")
        parser.add_argument("--recipients-above", dest="recipients_above")
        parser.add_argument("--topics-above", dest="topics_above")
        parser.add_argument("--audience-above", dest="audience_above")
        parser.add_argument("--outside-office-hours", action="store_true")
        parser.add_argument("--office-days", dest="office_days", help="ISO weekdays, e.g. 12345.")
        parser.add_argument("--office-start", dest="office_start", help="HH:MM")
        parser.add_argument("--office-end", dest="office_end", help="HH:MM")
        parser.add_argument("--office-zone", dest="office_zone", help="e.g. Europe/Paris")
        parser.add_argument("--match-all", action="store_true")
        parser.add_argument("--approvals", help="1 to 3 distinct operators.")
        parser.add_argument("--valid-minutes", dest="valid_minutes")

    def handle(self, *args, **options) -> None:
        tenant = tenant_by_slug(options["tenant"])
        if options["action"] == "list":
            for policy in selectors.policy_list(tenant=tenant):
                self.stdout.write(f"{policy.name}: {services.policy_snapshot(policy)}")
            return
        if not options["acting_as"]:
            raise CommandError("Changing a policy needs --as, an admin of the tenant.")
        actor, _membership = acting_as(options["acting_as"], tenant, "approval_policy")
        policy = None
        if options["action"] in ("change", "delete"):
            policy = selectors.policy_list(tenant=tenant).filter(name=options["name"]).first()
            if policy is None:
                raise CommandError(f"{tenant.name} has no policy named {options['name']!r}.")
        try:
            if options["action"] == "delete":
                services.policy_delete(actor=actor, policy=policy)
                self.stdout.write(self.style.SUCCESS(f"Deleted the policy {policy.name!r}."))
                return
            data = services.policy_snapshot(policy) if policy else {}
            data.update(
                {
                    field: options[option]
                    for option, field in FIELDS.items()
                    if options.get(option) is not None
                }
            )
            if options["rename"]:
                data["name"] = options["rename"]
            for flag in ("outside_office_hours", "match_all"):
                data[flag] = options[flag] or bool(data.get(flag))
            if policy is None:
                policy = services.policy_create(actor=actor, tenant=tenant, data=data)
            else:
                policy = services.policy_update(actor=actor, policy=policy, data=data)
        except (ValidationError, PermissionDenied) as error:
            raise CommandError(f"Nothing changed: {_by_field(error)}") from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Saved the policy {policy.name!r}: {services.policy_snapshot(policy)}"
            )
        )
