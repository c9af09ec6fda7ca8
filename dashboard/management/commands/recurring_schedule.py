import json

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from dashboard.management.commands._common import acting_as, tenant_by_slug
from dashboard.recurring import cron, selectors, services
from dashboard.recurring.targets import all_targets

OPTIONS = {
    "cron": "--cron",
    "time_zone": "--zone",
    "target": "--target",
    "target_kind": "--kind",
    "topics": "--topics",
    "context": "--context",
    "recipients": "--recipients-file",
    "matching": "--matching",
    "wait_time_for_validation_seconds": "--wait",
    "files_uploaded_attested": "--attest",
    "name": "--name",
}


def _by_option(error: Exception) -> str:
    """A refusal naming the option each problem is about ("--cron: ...")."""
    if isinstance(error, ValidationError) and hasattr(error, "error_dict"):
        return "; ".join(
            f"{OPTIONS.get(field, field)}: {' '.join(errors[0].messages)}"
            if field != "__all__"
            else " ".join(errors[0].messages)
            for field, errors in error.error_dict.items()
        )
    if isinstance(error, ValidationError):
        return "; ".join(error.messages)
    return str(error)


class Command(BaseCommand):
    help = (
        "List, show, add, enable, disable or delete a tenant's recurring schedules, or fire the "
        "due ones now (what the beat does every few seconds). The same rules and audit rows as "
        "the pages; changes need --as, a member who may request triggers (their creator or an "
        "operator for changes)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("tenant", help="The tenant's slug.")
        parser.add_argument(
            "action", choices=["list", "show", "add", "enable", "disable", "delete", "fire-due"]
        )
        parser.add_argument("--as", dest="acting_as", help="The member acting (audited).")
        parser.add_argument("--name", help="The schedule's name.")
        parser.add_argument("--cron", help='Five fields, e.g. "0 9 * * 1-5".')
        parser.add_argument("--zone", default="UTC", help="IANA time zone, e.g. Europe/Berlin.")
        parser.add_argument("--kind", help="event_generator, altcraft_launch or daily_trigger.")
        parser.add_argument("--target", help="The generator, trigger campaign or connection.")
        parser.add_argument("--topics", default="", help="Event generator: topic keys, a,b.")
        parser.add_argument("--context", default="{}", help="Event generator: JSON context.")
        parser.add_argument("--recipients-file", dest="recipients_file", help="Altcraft list.")
        parser.add_argument("--matching", default="", help="Altcraft: email, phone, ...")
        parser.add_argument("--wait", help="Daily trigger: validation wait, 0 to 30 seconds.")
        parser.add_argument(
            "--attest",
            action="store_true",
            help="Daily trigger: each day's files finish uploading before it fires.",
        )
        parser.add_argument("--disabled", action="store_true", help="add: create it disabled.")

    def handle(self, *args, **options) -> None:
        tenant = tenant_by_slug(options["tenant"])
        action = options["action"]
        if action == "list":
            for schedule in selectors.schedule_list(tenant=tenant):
                state = "enabled" if schedule.enabled else "disabled"
                self.stdout.write(
                    f"{schedule.name}: {cron.rule_words(schedule.cron)} ({schedule.time_zone}, "
                    f"{schedule.cron}), {state}; {schedule.target_label}"
                )
            return
        if action == "fire-due":
            handled = services.recurring_fire_due()
            self.stdout.write(f"{handled} due fire(s) handled.")
            return
        schedule = None
        if action != "add":
            schedule = selectors.schedule_list(tenant=tenant).filter(name=options["name"]).first()
            if schedule is None:
                raise CommandError(
                    f"{tenant.name} has no recurring schedule named {options['name']!r}."
                )
        if action == "show":
            self.stdout.write(f"{schedule.name}: {cron.rule_words(schedule.cron)}")
            for fire in selectors.next_fires(schedule=schedule):
                self.stdout.write(
                    f"  next {fire.local:%a %Y-%m-%d %H:%M} {schedule.time_zone} "
                    f"({fire.utc:%Y-%m-%d %H:%M} UTC)"
                )
            for fire in selectors.fire_history(schedule=schedule, limit=20):
                self.stdout.write(
                    f"  {fire.fire_at:%Y-%m-%d %H:%M} UTC {fire.outcome}: "
                    f"{fire.reason or fire.result_label}"
                )
            return
        if not options["acting_as"]:
            raise CommandError("Changing a recurring schedule needs --as, a member of the tenant.")
        actor, _membership = acting_as(options["acting_as"], tenant, "recurring_schedule")
        try:
            if action == "add":
                schedule = services.schedule_create(
                    actor=actor, tenant=tenant, data=self._input(tenant, options)
                )
                self.stdout.write(
                    self.style.SUCCESS(
                        f"Added {schedule.name!r}: {cron.rule_words(schedule.cron)} "
                        f"({schedule.time_zone}); next fire {schedule.next_fire_at:%Y-%m-%d %H:%M} UTC."
                    )
                )
            elif action in ("enable", "disable"):
                services.schedule_set_enabled(
                    actor=actor, schedule=schedule, enabled=action == "enable"
                )
                self.stdout.write(self.style.SUCCESS(f"{schedule.name!r} {action}d."))
            else:
                services.schedule_delete(actor=actor, schedule=schedule)
                self.stdout.write(self.style.SUCCESS(f"Deleted {schedule.name!r}."))
        except (ValidationError, PermissionDenied) as error:
            raise CommandError(f"Nothing changed: {_by_option(error)}") from None

    def _input(self, tenant, options) -> services.ScheduleInput:
        kind = options["kind"] or ""
        target = all_targets().get(kind)
        target_id = ""
        if target is not None and options["target"]:
            wanted = options["target"].strip()
            for pk, name in target.choices(tenant=tenant):
                if name == wanted or str(pk) == wanted:
                    target_id = str(pk)
                    break
        recipients = ""
        if options["recipients_file"]:
            try:
                with open(options["recipients_file"], encoding="utf-8") as handle:
                    recipients = handle.read()
            except OSError as error:
                raise CommandError(f"--recipients-file: {error.strerror}.") from None
        try:
            context = json.loads(options["context"] or "{}")
        except json.JSONDecodeError:
            raise CommandError("--context: this is not JSON.") from None
        return services.ScheduleInput(
            name=options["name"] or "",
            cron=options["cron"] or "",
            time_zone=options["zone"],
            target_kind=kind,
            target_input={
                "id": target_id,
                "topics": options["topics"],
                "context": context,
                "recipients": recipients,
                "matching": options["matching"],
                "wait_time_for_validation_seconds": options["wait"],
                "files_uploaded_attested": options["attest"],
            },
            enabled=not options["disabled"],
        )
