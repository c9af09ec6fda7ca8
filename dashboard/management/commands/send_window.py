"""send_window: show or set a connection's send window and blackout dates."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from dashboard.management.commands._common import acting_as, error_text, tenant_by_slug
from dashboard.pauses.services import connection_for_pause
from dashboard.send_windows import selectors, services


class Command(BaseCommand):
    help = (
        "Show a connection's send window and blackout dates, or set them (--weekdays, --start, "
        "--end, --zone for the window or --any-time for none; --blackout DATE[=REASON] for each "
        "date, replacing the list, or --keep-blackouts). New triggers outside the window are "
        "refused, queued runs wait for it. Setting needs --as (an operator or admin) and "
        "--reason (audited)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("tenant", help="The tenant's slug.")
        parser.add_argument("connection", help="The connection's name (or id).")
        parser.add_argument("--weekdays", help='e.g. "Mon-Fri" or "Mon,Wed,Sat".')
        parser.add_argument("--start", help="Local start time, HH:MM.")
        parser.add_argument("--end", help="Local end time, HH:MM.")
        parser.add_argument("--zone", default="UTC", help="IANA time zone, e.g. Europe/Berlin.")
        parser.add_argument("--any-time", action="store_true", help="No window (any time).")
        parser.add_argument(
            "--blackout",
            action="append",
            default=[],
            metavar="YYYY-MM-DD[=REASON]",
            help="A date when nothing is sent; repeat for each.",
        )
        parser.add_argument(
            "--keep-blackouts", action="store_true", help="Keep the blackout dates as they are."
        )
        parser.add_argument("--reason", help="Why it changes (audited).")
        parser.add_argument("--as", dest="acting_as", help="An operator or admin of the tenant.")

    def handle(self, *args, **options) -> None:
        tenant = tenant_by_slug(options["tenant"])
        try:
            connection = connection_for_pause(tenant=tenant, name_or_id=options["connection"])
        except ValidationError as error:
            raise CommandError(error_text(error)) from None
        window_given = any(options[name] for name in ("weekdays", "start", "end"))
        changing = window_given or options["any_time"] or options["blackout"]
        if not changing:
            found = selectors.send_rules_for(
                connection_id=connection.pk, connection_name=connection.name
            )
            self.stdout.write(f"{connection.name}: {found.describe()}")
            for day, reason in sorted(found.blackouts.items()):
                self.stdout.write(f"  not on {day:%Y-%m-%d}" + (f": {reason}" if reason else ""))
            return
        if window_given and options["any_time"]:
            raise CommandError("Give either a window (--weekdays, --start, --end) or --any-time.")
        if window_given and not all(options[name] for name in ("weekdays", "start", "end")):
            raise CommandError("A window needs --weekdays, --start and --end.")
        if not options["acting_as"]:
            raise CommandError("Setting a send window needs --as (an operator or admin).")
        actor, _membership = acting_as(options["acting_as"], tenant, "send_window")
        current = selectors.send_rules_for(connection_id=connection.pk)
        if window_given:
            window = services.WindowInput(
                options["weekdays"], options["start"], options["end"], options["zone"]
            )
        elif options["any_time"]:
            window = None
        else:  # only blackouts given: the window stays
            window = (
                None
                if current.window is None
                else services.WindowInput(
                    sorted(current.window.weekdays),
                    current.window.start,
                    current.window.end,
                    current.window.zone,
                )
            )
        if options["keep_blackouts"]:
            blackouts = [
                {"date": f"{day:%Y-%m-%d}", "reason": reason}
                for day, reason in sorted(current.blackouts.items())
            ]
        else:
            blackouts = []
            for given in options["blackout"]:
                day, _, reason = given.partition("=")
                blackouts.append({"date": day, "reason": reason})
        try:
            found = services.send_window_set(
                actor=actor,
                connection=connection,
                window=window,
                blackouts=blackouts,
                reason=options["reason"] or "",
            )
        except (ValidationError, PermissionDenied) as error:
            raise CommandError(f"Not changed: {error_text(error)}") from None
        self.stdout.write(
            self.style.SUCCESS(f"Send window of {connection.name}: {found.describe()}")
        )
