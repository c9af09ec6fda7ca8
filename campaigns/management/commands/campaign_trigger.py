"""Trigger (or schedule) an Optimove event generator from the command line, for ops and
pipelines: the same services and checks as the trigger form, acting as a named member."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from campaigns.event_generators import selectors, services
from dashboard.input_checks import parse_json_text
from dashboard.management.commands._common import acting_as, tenant_by_slug
from dashboard.models import Membership, Permission
from dashboard.runs.models import Run
from dashboard.runs.services import ProbableDuplicate, RunActionError


class Command(BaseCommand):
    help = (
        "Trigger an Optimove event generator for one or more topics (one run each), now or at "
        "--schedule. The context is checked against the generator's schema; nothing is sent "
        "when it does not match."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--generator", required=True, help="Event Generator UUID or name.")
        parser.add_argument(
            "--topic",
            action="append",
            default=[],
            help="Topic key or name; repeat for several topics (one run per topic).",
        )
        parser.add_argument("--all-topics", action="store_true", help="Every topic it has.")
        parser.add_argument(
            "--context-file", required=True, help="JSON file with the context object ('-': stdin)."
        )
        parser.add_argument(
            "--schedule",
            help="Fire later, at this ISO 8601 time with a zone (e.g. 2026-02-05T20:00:00Z).",
        )
        parser.add_argument("--as", dest="username", required=True, help="Act as this member.")
        parser.add_argument("--tenant", help="Tenant slug (needed when the name is ambiguous).")
        parser.add_argument(
            "--idempotency-key",
            default="",
            help="Re-running with the same key returns the same trigger (default: a new one).",
        )
        parser.add_argument(
            "--send-anyway",
            action="store_true",
            help="Send even if an identical run went out recently (Optimove does not deduplicate).",
        )
        parser.add_argument("--follow", action="store_true", help="Wait for every run to settle.")
        parser.add_argument("--timeout", type=float, default=300.0)

    def handle(self, *args, **options) -> None:
        generator, actor = self._generator_and_actor(options)
        context = self._context(options["context_file"])
        topics = {topic.name: topic.key for topic in generator.topics.all()}
        if options["all_topics"]:
            topic_keys = list(topics.values())
        else:
            topic_keys = [topics.get(value, value) for value in options["topic"]]
        try:
            if options["schedule"]:
                schedule = services.schedule_create(
                    actor=actor,
                    generator=generator,
                    topic_keys=topic_keys,
                    context=context,
                    fire_at=_parse_moment(options["schedule"]),
                    send_anyway=options["send_anyway"],
                )
                self.stdout.write(
                    f"Scheduled #{schedule.pk}: {generator.name} for {len(schedule.topic_keys)} "
                    f"topic(s) at {schedule.fire_at:%Y-%m-%d %H:%M:%S} UTC.\n"
                )
                return
            group = services.campaign_trigger(
                actor=actor,
                generator=generator,
                topic_keys=topic_keys,
                context=context,
                idempotency_key=options["idempotency_key"] or uuid.uuid4().hex,
                send_anyway=options["send_anyway"],
            )
        except ValidationError as error:
            raise CommandError("Nothing was sent:\n" + _error_lines(error)) from None
        except ProbableDuplicate as duplicate:
            raise CommandError(
                f"Nothing was sent: {duplicate} Pass --send-anyway to send it all the same."
            ) from None
        except RunActionError as error:
            raise CommandError(f"Nothing was sent: {error}") from None
        runs = list(Run.objects.filter(campaign_run__group=group).order_by("pk"))
        self.stdout.write(f"Trigger #{group.pk}: {len(runs)} run(s) of {generator.name}.\n")
        for run in runs:
            self.stdout.write(f"  run #{run.pk} topic {run.parameters['topic_key']}: {run.state}\n")
        if options["follow"]:
            self._follow(runs, options["timeout"])

    def _generator_and_actor(self, options):
        tenants = []
        if options["tenant"]:
            tenants = [tenant_by_slug(options["tenant"])]
        else:
            tenants = [
                membership.tenant
                for membership in Membership.objects.filter(
                    user__username=options["username"]
                ).select_related("tenant")
            ]
            if not tenants:
                raise CommandError(f"{options['username']} is not a member of any tenant.")
        found = selectors.generator_find(tenants=tenants, reference=options["generator"])
        if not found:
            raise CommandError(f"No event generator {options['generator']!r} in {_names(tenants)}.")
        if len(found) > 1:
            raise CommandError(
                f"{options['generator']!r} names generators in several tenants "
                f"({_names([g.tenant for g in found])}): pass --tenant."
            )
        generator = found[0]
        actor, membership = acting_as(options["username"], generator.tenant, "campaign_trigger")
        if not membership.can(Permission.REQUEST):
            raise CommandError(
                f"{options['username']} ({membership.get_role_display()}) cannot trigger campaigns."
            )
        return generator, actor

    def _context(self, path: str):
        try:
            text = __import__("sys").stdin.read() if path == "-" else Path(path).read_text("utf-8")
        except OSError as error:
            raise CommandError(f"Cannot read {path}: {error.strerror}") from None
        except UnicodeDecodeError:
            raise CommandError(f"{path} is not UTF-8 text.") from None
        try:
            return parse_json_text(text, subject=path)
        except ValidationError as error:
            raise CommandError(error.messages[0]) from None

    def _follow(self, runs: list[Run], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            open_runs = [run for run in runs if run.is_open]
            if not open_runs:
                break
            time.sleep(1.0)
            for run in open_runs:
                run.refresh_from_db()
        for run in runs:
            detail = f" audience {run.audience_size}" if run.audience_size is not None else ""
            failure = f" {run.failure_code}: {run.failure_message}" if run.failure_code else ""
            self.stdout.write(
                f"  run #{run.pk}: {run.get_state_display()} ({run.vendor_status or '-'})"
                f"{detail}{failure}\n"
            )


def _parse_moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(f"--schedule {text!r} is not an ISO 8601 time.") from None
    if moment.tzinfo is None:
        raise CommandError("--schedule needs a time zone (e.g. 2026-02-05T20:00:00Z or +01:00).")
    return moment


def _names(tenants) -> str:
    return ", ".join(sorted({tenant.slug for tenant in tenants}))


def _error_lines(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "\n".join(
            f"  {field.removeprefix('ctx/') if field != '__all__' else 'context'}: {message}"
            for field, messages in error.message_dict.items()
            for message in messages
        )
    return "\n".join(f"  {message}" for message in error.messages)
