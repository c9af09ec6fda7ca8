"""Writes for Optimove event generators: the registry, schema versions, triggers (one run per
topic, through the run engine), retries, schedules and their firing.

Every write validates everything first and then saves in one transaction with its audit row, so
bad input leaves nothing behind: no half-saved generator, no half a trigger group.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from importlib import import_module
from typing import Any

from celery import current_app
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils.translation import gettext

from campaigns.event_generators import schema as schemas
from campaigns.event_generators.models import (
    CampaignRun,
    CampaignSettings,
    EventGenerator,
    ScheduledTrigger,
    ScheduleState,
    SchemaVersion,
    Topic,
    TriggerGroup,
)
from campaigns.event_generators.send_window import check_generator_window
from campaigns.vendors.optimove_campaigns.client import check_event_generator_id
from dashboard.audit.trail import Actor, record_audit_event
from dashboard.clock import utc_now
from dashboard.input_checks import nested_unstorable_reason, parse_json_text
from dashboard.models import Membership, Tenant, VendorConnection, VendorKind
from dashboard.pauses.selectors import paused_scopes
from dashboard.pauses.services import SendingPaused, check_sending_allowed
from dashboard.runs.models import Operation, Run
from dashboard.runs.services import (
    ProbableDuplicate,
    owner_or_operator_refusal,
    run_submit_many,
)
from dashboard.runs.states import RunState
from dashboard.vendors.http import ConfigurationError

logger = logging.getLogger(__name__)
OPERATION = Operation.OPTIMOVE_RUN_EVENT_GENERATOR
MAX_TOPICS_PER_TRIGGER = 5000
EXPORT_FORMAT = "triggerdesk.event-generator/1"


def _user(actor: Actor) -> Any:
    user = actor.user
    return user if user is not None and user.is_authenticated else None


# -- settings ----------------------------------------------------------------------------------


def campaign_settings(*, tenant: Tenant) -> CampaignSettings:
    """The tenant's campaign settings (created with the defaults on first use)."""
    settings, _ = CampaignSettings.objects.get_or_create(tenant=tenant)
    return settings


def campaign_settings_update(*, actor: Actor, tenant: Tenant, approval_required: bool) -> None:
    """Whether campaign runs need an operator's approval (audited)."""
    with transaction.atomic():
        settings = campaign_settings(tenant=tenant)
        previous = settings.approval_required
        settings.approval_required = approval_required
        settings.save(update_fields=["approval_required"])
        record_audit_event(
            actor=actor,
            tenant=tenant,
            action="campaigns.settings_changed",
            object_type="tenant",
            object_id=tenant.pk,
            summary={"approval_required": {"from": previous, "to": approval_required}},
        )


# -- the registry ------------------------------------------------------------------------------


def check_generator_id(value: str) -> str:
    """The Optimove Event Generator id, stripped; ValidationError naming the field if malformed."""
    value = (value or "").strip()
    try:
        check_event_generator_id(value)
    except ConfigurationError:
        raise ValidationError(
            {
                "external_id": gettext(
                    "%(value)s is not an Event Generator ID: expected a UUID such as "
                    "00000000-abcd-abcd-abcd-000000000000."
                )
                % {"value": repr(value[:100])}
            }
        ) from None
    return value


def parse_topics(text_or_items: str | list[Any]) -> list[tuple[str, str]]:
    """Topics as (key, name) pairs from lines "key name" / "key,name" or a JSON list of
    {"key", "name"}; ValidationError naming the first malformed one. Keys are UUIDs."""
    items: list[tuple[str, str]] = []
    if isinstance(text_or_items, str):
        for number, line in enumerate(text_or_items.splitlines(), start=1):
            line = line.strip()
            if not line:
                continue
            key, _, name = line.replace(",", " ", 1).partition(" ")
            items.append((key.strip(), name.strip() or key.strip()))
            if not _is_uuid(key.strip()):
                raise ValidationError(
                    {
                        "topics": gettext("Line %(number)s: %(value)s is not a topic key (a UUID).")
                        % {"number": number, "value": repr(key.strip()[:60])}
                    }
                )
    else:
        for number, item in enumerate(text_or_items, start=1):
            if not isinstance(item, dict) or not isinstance(item.get("key"), str):
                raise ValidationError(
                    {
                        "topics": gettext('Topic %(number)s needs a string "key".')
                        % {"number": number}
                    }
                )
            key = item["key"].strip()
            if not _is_uuid(key):
                raise ValidationError(
                    {
                        "topics": gettext(
                            "Topic %(number)s: %(value)s is not a topic key (a UUID)."
                        )
                        % {"number": number, "value": repr(key[:60])}
                    }
                )
            items.append((key, str(item.get("name") or key).strip()[:120]))
    seen: set[str] = set()
    for key, _ in items:
        if key.lower() in seen:
            raise ValidationError(
                {"topics": gettext("Topic %(key)s is listed twice.") % {"key": key}}
            )
        seen.add(key.lower())
    return items


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower() and len(value) == 36
    except ValueError:
        return False


def _check_connection(tenant: Tenant, connection: VendorConnection | None) -> VendorConnection:
    if connection is None or connection.tenant_id != tenant.pk:
        raise ValidationError({"connection": gettext("Choose one of this tenant's connections.")})
    if connection.kind != VendorKind.OPTIMOVE_CAMPAIGNS:
        raise ValidationError(
            {
                "connection": gettext(
                    "%(connection_name)s is not an Optimove campaigns connection."
                )
                % {"connection_name": connection.name}
            }
        )
    return connection


def _check_unique(tenant: Tenant, external_id: str, name: str, exclude: int | None) -> None:
    others = EventGenerator.objects.filter(tenant=tenant).exclude(pk=exclude)
    errors = {}
    if others.annotate(lowered=Lower("external_id")).filter(lowered=external_id.lower()).exists():
        errors["external_id"] = f"This tenant already has an event generator with id {external_id}."
    if others.filter(name=name).exists():
        errors["name"] = f"This tenant already has an event generator named {name!r}."
    if errors:
        raise ValidationError(errors)


def generator_create(
    *,
    actor: Actor,
    tenant: Tenant,
    connection: VendorConnection | None,
    external_id: str,
    name: str,
    description: str = "",
    topics: list[tuple[str, str]] | None = None,
    schema: dict[str, Any],
    comment: str = "",
) -> EventGenerator:
    """Register an event generator with its topics and first schema version (all or nothing)."""
    external_id = check_generator_id(external_id)
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": gettext("A generator needs a name.")})
    connection = _check_connection(tenant, connection)
    schemas.check_schema(schema)
    _check_unique(tenant, external_id, name, None)
    try:
        with transaction.atomic():
            generator = EventGenerator.objects.create(
                tenant=tenant,
                connection=connection,
                external_id=external_id,
                name=name[:120],
                description=description or "",
            )
            Topic.objects.bulk_create(
                Topic(generator=generator, key=key, name=topic_name[:120])
                for key, topic_name in topics or []
            )
            version = _new_version(actor, generator, schema, comment or "Created")
            record_audit_event(
                actor=actor,
                tenant=tenant,
                action="event_generator.created",
                object_type="event_generator",
                object_id=generator.pk,
                summary={
                    "external_id": external_id,
                    "name": generator.name,
                    "connection": connection.name,
                    "topics": [key for key, _ in topics or []],
                    "schema_version": version.number,
                },
            )
    except IntegrityError:
        # A concurrent registration of the same id or name won the race.
        _check_unique(tenant, external_id, name, None)
        raise
    return generator


def _new_version(
    actor: Actor, generator: EventGenerator, schema: dict[str, Any], comment: str
) -> SchemaVersion:
    previous = (
        SchemaVersion.objects.select_for_update().filter(generator=generator).order_by("-number")
    ).first()
    return SchemaVersion.objects.create(
        generator=generator,
        number=(previous.number + 1) if previous else 1,
        schema=schema,
        source=json.dumps(schema, ensure_ascii=False, indent=2),
        diff=schemas.schema_diff(previous.schema if previous else None, schema),
        comment=comment[:300],
        created_by=_user(actor),
        created_by_label=actor.display,
    )


def generator_update(
    *,
    actor: Actor,
    generator: EventGenerator,
    name: str,
    description: str,
    topics: list[tuple[str, str]],
    schema: dict[str, Any],
    comment: str = "",
) -> SchemaVersion | None:
    """Change a generator's name, description, topics and schema. A changed schema becomes a new
    version (returned); an unchanged one makes none."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": gettext("A generator needs a name.")})
    schemas.check_schema(schema)
    _check_unique(generator.tenant, generator.external_id, name, generator.pk)
    with transaction.atomic():
        locked = EventGenerator.objects.select_for_update().get(pk=generator.pk)
        current = locked.current_schema
        version = None
        if current is None or current.schema != schema:
            version = _new_version(actor, locked, schema, comment or "Edited")
        before = dict(Topic.objects.filter(generator=locked).values_list("key", "name"))
        after = dict(topics)
        Topic.objects.filter(generator=locked).exclude(key__in=list(after)).delete()
        for key, topic_name in topics:
            Topic.objects.update_or_create(
                generator=locked, key=key, defaults={"name": topic_name[:120]}
            )
        locked.name = name[:120]
        locked.description = description or ""
        locked.save(update_fields=["name", "description", "updated_at"])
        record_audit_event(
            actor=actor,
            tenant=locked.tenant,
            action="event_generator.changed",
            object_type="event_generator",
            object_id=locked.pk,
            summary={
                "name": locked.name,
                "topics_added": sorted(set(after) - set(before)),
                "topics_removed": sorted(set(before) - set(after)),
                "schema_version": version.number if version else None,
            },
        )
    generator.refresh_from_db()
    return version


def generator_export(*, generator: EventGenerator) -> dict[str, Any]:
    """The shared document for marketing and engineering: id, name, topics and schema."""
    current = generator.current_schema
    return {
        "format": EXPORT_FORMAT,
        "event_generator_id": generator.external_id,
        "name": generator.name,
        "description": generator.description,
        "topics": [{"key": topic.key, "name": topic.name} for topic in generator.topics.all()],
        "schema_version": current.number if current else None,
        "schema": current.document if current else None,
    }


def parse_import(text: str | bytes) -> dict[str, Any]:
    """An imported document: either an export (with id, name, topics, schema) or a bare JSON
    Schema. ValidationError when it is not JSON or its parts are invalid."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError({"file": gettext("The file is not UTF-8 text (JSON).")}) from None
    try:
        document = parse_json_text(text, subject="The file")
    except ValidationError as error:
        raise ValidationError({"file": error.messages}) from None
    if not isinstance(document, dict):
        raise ValidationError({"file": gettext("The file must hold a JSON object.")})
    if document.get("format") == EXPORT_FORMAT or "schema" in document:
        schema = document.get("schema")
        result: dict[str, Any] = {"schema": schemas.check_schema(schema)}
        if document.get("event_generator_id") is not None:
            result["external_id"] = check_generator_id(str(document["event_generator_id"]))
        if document.get("name"):
            result["name"] = str(document["name"])[:120]
        if document.get("description"):
            result["description"] = str(document["description"])
        if document.get("topics") is not None:
            if not isinstance(document["topics"], list):
                raise ValidationError({"topics": gettext("topics must be a list.")})
            result["topics"] = parse_topics(document["topics"])
        return result
    return {"schema": schemas.check_schema(document)}


# -- triggering --------------------------------------------------------------------------------


@dataclass
class TriggerRequest:
    """A checked trigger: what would be sent, for which topics, against which schema version."""

    generator: EventGenerator
    schema_version: SchemaVersion
    topics: list[Topic]
    context: dict[str, Any]


def trigger_check(
    *,
    generator: EventGenerator,
    topic_keys: list[str],
    context: Any,
    schema_version: SchemaVersion | None = None,
) -> TriggerRequest:
    """Check a trigger without sending anything: known topics, a context the schema accepts.
    ValidationError with {"topics": ..., "<field name>": ...} naming every problem."""
    version = schema_version or generator.current_schema
    if version is None:
        raise ValidationError(gettext("This event generator has no schema yet."))
    errors: dict[str, list[str]] = {}
    keys = [str(key).strip() for key in topic_keys or [] if str(key).strip()]
    known = {topic.key: topic for topic in generator.topics.all()}
    if not keys:
        errors["topics"] = ["Choose at least one topic."]
    elif len(keys) > MAX_TOPICS_PER_TRIGGER:
        errors["topics"] = [f"At most {MAX_TOPICS_PER_TRIGGER} topics per trigger."]
    else:
        unknown = [key for key in keys if key not in known]
        if unknown:
            errors["topics"] = [
                f"Unknown topic{'s' if len(unknown) > 1 else ''} for {generator.name}: "
                + ", ".join(unknown[:10])
                + (" …" if len(unknown) > 10 else "")
            ]
        if len(set(keys)) != len(keys):
            errors.setdefault("topics", []).append("A topic is listed more than once.")
    if not isinstance(context, dict):
        errors[schemas.NON_FIELD] = ["The context must be a JSON object."]
    elif reason := nested_unstorable_reason(context):
        # Before jsonschema reads it (recursion) and before it is stored (jsonb).
        errors[schemas.NON_FIELD] = [f"The context contains {reason}, which cannot be stored."]
    else:
        for name, messages in schemas.context_errors(version.schema, context).items():
            errors.setdefault(name, []).extend(messages)
    if errors:
        raise ValidationError(errors)
    return TriggerRequest(
        generator=generator,
        schema_version=version,
        topics=[known[key] for key in keys],
        context=schemas.stored_order(context),
    )


def campaign_trigger(
    *,
    actor: Actor,
    generator: EventGenerator,
    topic_keys: list[str],
    context: Any,
    idempotency_key: str,
    send_anyway: bool = False,
    schema_version: SchemaVersion | None = None,
) -> TriggerGroup:
    """Trigger the generator once per topic through the run engine, as one trigger group.

    All or nothing: the context is checked against the schema first, and when any topic's run
    is a probable duplicate (ProbableDuplicate) no run of the group is created. The same
    idempotency key returns the same group.
    """
    idempotency_key = (idempotency_key or "").strip()
    if not idempotency_key or len(idempotency_key) > 40:
        raise ValidationError(gettext("A trigger needs an idempotency key of 1 to 40 characters."))
    existing = TriggerGroup.objects.filter(
        tenant=generator.tenant, idempotency_key=idempotency_key
    ).first()
    if existing is not None:
        return existing
    check_sending_allowed(tenant=generator.tenant, connection=generator.connection)
    check_generator_window(generator=generator)
    checked = trigger_check(
        generator=generator,
        topic_keys=topic_keys,
        context=context,
        schema_version=schema_version,
    )
    try:
        with transaction.atomic():
            group = TriggerGroup.objects.create(
                tenant=generator.tenant,
                generator=generator,
                schema_version=checked.schema_version,
                context=checked.context,
                idempotency_key=idempotency_key,
                created_by=_user(actor),
                created_by_label=actor.display,
            )
            _submit_runs(actor, group, checked.topics, send_anyway=send_anyway, prefix="")
    except IntegrityError:
        existing = TriggerGroup.objects.filter(
            tenant=generator.tenant, idempotency_key=idempotency_key
        ).first()
        if existing is not None:
            return existing
        raise
    return group


def _submit_runs(
    actor: Actor, group: TriggerGroup, topics: list[Topic], *, send_anyway: bool, prefix: str
) -> list[Run]:
    generator = group.generator
    approval_required = campaign_settings(tenant=group.tenant).approval_required
    runs = run_submit_many(
        actor=actor,
        tenant=group.tenant,
        connection=generator.connection,
        operation=OPERATION,
        requests=[
            (
                # Unique per group and topic (a group key is at most 40 characters).
                f"{group.idempotency_key}:{prefix}{index}",
                {
                    "event_generator_id": generator.external_id,
                    "topic_key": topic.key,
                    "context": group.context,
                },
            )
            for index, topic in enumerate(topics)
        ],
        approval_required=approval_required,
        send_anyway=send_anyway,
    )
    links = [
        CampaignRun(
            run=run,
            generator=generator,
            schema_version=group.schema_version,
            group=group,
            topic_key=topic.key,
            topic_name=topic.name,
        )
        for run, topic in zip(runs, topics, strict=True)
    ]
    CampaignRun.objects.bulk_create(links)
    return runs


def trigger_group_retry_refusal(
    *, actor: Actor, group: TriggerGroup, membership: Membership | None = None
) -> str:
    """Why `actor` may not retry `group`, or "" when they may: whoever triggered it (for a
    schedule's group, its requester), or an operator or admin of its tenant."""
    return owner_or_operator_refusal(
        actor=actor,
        tenant_id=group.tenant_id,
        owner_id=group.created_by_id,
        owner="person who triggered it",
        doing="retry this trigger",
        membership=membership,
    )


def trigger_group_retry_failed(*, actor: Actor, group: TriggerGroup) -> list[Run]:
    """Send again only the topics whose latest run in the group failed (new runs, new keys,
    requested by `actor`). Only whoever triggered the group, or an operator or admin, may
    (PermissionDenied otherwise)."""
    refusal = trigger_group_retry_refusal(actor=actor, group=group)
    if refusal:
        raise PermissionDenied(refusal)
    with transaction.atomic():
        locked = TriggerGroup.objects.select_for_update().get(pk=group.pk)
        latest: dict[str, CampaignRun] = {}
        for link in (
            CampaignRun.objects.filter(group=locked).select_related("run").order_by("run_id")
        ):
            latest[link.topic_key] = link
        failed = [link for link in latest.values() if link.run.state == RunState.FAILED]
        if not failed:
            return []
        locked.retry_count += 1
        locked.save(update_fields=["retry_count"])
        topics = [Topic(key=link.topic_key, name=link.topic_name) for link in failed]
        runs = _submit_runs(
            actor, locked, topics, send_anyway=False, prefix=f"r{locked.retry_count}-"
        )
        record_audit_event(
            actor=actor,
            tenant=locked.tenant,
            action="trigger_group.retried",
            object_type="trigger_group",
            object_id=locked.pk,
            summary={"topics": [link.topic_key for link in failed], "runs": [r.pk for r in runs]},
        )
    return runs


def relaunch_initial(*, run: Run) -> dict[str, Any]:
    """What a relaunch form starts from: the generator, topic and context of a finished run."""
    link = CampaignRun.objects.select_related("generator").filter(run=run).first()
    if link is None:
        raise ValidationError(gettext("Only event-generator runs can be relaunched."))
    if not run.is_terminal and run.state != RunState.OUTCOME_UNKNOWN:
        raise ValidationError(gettext("Only a finished run can be relaunched."))
    return {
        "generator": link.generator,
        "topic_keys": [link.topic_key],
        "context": run.parameters.get("context") or {},
    }


# -- schedules ---------------------------------------------------------------------------------


def _check_fire_at(fire_at: datetime | None) -> datetime:
    if fire_at is None or fire_at.tzinfo is None:
        raise ValidationError({"fire_at": gettext("Give the time with its time zone.")})
    if fire_at <= utc_now():
        raise ValidationError({"fire_at": gettext("That time is in the past: choose a later one.")})
    return fire_at


def schedule_create(
    *,
    actor: Actor,
    generator: EventGenerator,
    topic_keys: list[str],
    context: Any,
    fire_at: datetime | None,
    send_anyway: bool = False,
) -> ScheduledTrigger:
    """Schedule a trigger for later; checked now exactly as a trigger would be. Its creator is
    its requester (the runs it fires are theirs, for four eyes)."""
    fire_at = _check_fire_at(fire_at)
    checked = trigger_check(generator=generator, topic_keys=topic_keys, context=context)
    with transaction.atomic():
        schedule = ScheduledTrigger.objects.create(
            tenant=generator.tenant,
            generator=generator,
            schema_version=checked.schema_version,
            topic_keys=[topic.key for topic in checked.topics],
            context=checked.context,
            fire_at=fire_at,
            send_anyway=send_anyway,
            created_by=_user(actor),
            created_by_label=actor.display,
            requested_by=_user(actor),
            requested_by_label=actor.display,
        )
        record_audit_event(
            actor=actor,
            tenant=generator.tenant,
            action="schedule.created",
            object_type="schedule",
            object_id=schedule.pk,
            summary={
                "generator": generator.external_id,
                "topics": schedule.topic_keys,
                "context": schedule.context,
                "fire_at": fire_at.isoformat(),
            },
        )
        _wake_at(schedule)
    return schedule


def schedule_change_refusal(
    *, actor: Actor, schedule: ScheduledTrigger, membership: Membership | None = None
) -> str:
    """Why `actor` may not edit or cancel `schedule`, or "" when they may: its creator, or an
    operator or admin of its tenant (the rule for cancelling runs)."""
    return owner_or_operator_refusal(
        actor=actor,
        tenant_id=schedule.tenant_id,
        owner_id=schedule.created_by_id,
        owner="person who scheduled it",
        doing="change or cancel this schedule",
        membership=membership,
    )


def _check_may_change(actor: Actor, schedule: ScheduledTrigger) -> None:
    refusal = schedule_change_refusal(actor=actor, schedule=schedule)
    if refusal:
        raise PermissionDenied(refusal)


def _leaves(value: Any, path: str) -> dict[str, Any]:
    """A context as {"context.venue.city": value, ...}: one entry per value that is not an
    object, so the audit's diff names each changed field (and secret-looking names are
    redacted by the audit trail like any other key)."""
    if isinstance(value, dict) and value:
        found: dict[str, Any] = {}
        for key, item in value.items():
            found.update(_leaves(item, f"{path}.{key}"))
        return found
    return {path: value}


def _schedule_diff(schedule: ScheduledTrigger, changed: dict[str, Any]) -> dict[str, Any]:
    diff: dict[str, Any] = {}
    if changed["topic_keys"] != schedule.topic_keys:
        diff["topics"] = {"from": schedule.topic_keys, "to": changed["topic_keys"]}
    if changed["fire_at"] != schedule.fire_at:
        diff["fire_at"] = {
            "from": schedule.fire_at.isoformat(),
            "to": changed["fire_at"].isoformat(),
        }
    if changed["schema_version"].pk != schedule.schema_version_id:
        diff["schema_version"] = {
            "from": schedule.schema_version.number,
            "to": changed["schema_version"].number,
        }
    before = _leaves(schedule.context, "context")
    after = _leaves(changed["context"], "context")
    for path in sorted(set(before) | set(after)):
        if before.get(path) != after.get(path):
            diff[path] = {"from": before.get(path), "to": after.get(path)}
    return diff


def schedule_update(
    *,
    actor: Actor,
    schedule: ScheduledTrigger,
    topic_keys: list[str],
    context: Any,
    fire_at: datetime | None,
) -> ScheduledTrigger:
    """Edit a schedule that has not fired yet (checked against the generator's current schema).

    Only its creator, or an operator or admin, may (PermissionDenied otherwise). Whoever changes
    what it sends becomes its requester: it fires as them, so they cannot approve its runs
    themselves. Audited with what changed, field by field.
    """
    _check_may_change(actor, schedule)
    fire_at = _check_fire_at(fire_at)
    checked = trigger_check(generator=schedule.generator, topic_keys=topic_keys, context=context)
    with transaction.atomic():
        locked = (
            ScheduledTrigger.objects.select_for_update(of=("self",))
            .select_related("schema_version")
            .get(pk=schedule.pk)
        )
        if locked.state != ScheduleState.SCHEDULED:
            raise ValidationError(gettext("This schedule already fired or was cancelled."))
        changed = {
            "schema_version": checked.schema_version,
            "topic_keys": [topic.key for topic in checked.topics],
            "context": checked.context,
            "fire_at": fire_at,
        }
        diff = _schedule_diff(locked, changed)
        for name, value in changed.items():
            setattr(locked, name, value)
        editor = _user(actor)
        if diff:
            if locked.requested_by_id != (editor.pk if editor else None):
                diff["requested_by"] = {"from": locked.requested_by_label, "to": actor.display}
            locked.requested_by = editor
            locked.requested_by_label = actor.display
        locked.save(update_fields=[*changed, "requested_by", "requested_by_label"])
        record_audit_event(
            actor=actor,
            tenant=locked.tenant,
            action="schedule.changed",
            object_type="schedule",
            object_id=locked.pk,
            summary=diff or {"unchanged": True},
        )
        _wake_at(locked)
    schedule.refresh_from_db()
    return schedule


def schedule_cancel(*, actor: Actor, schedule: ScheduledTrigger) -> None:
    """Withdraw a schedule before it fires: its creator, or an operator or admin."""
    _check_may_change(actor, schedule)
    with transaction.atomic():
        changed = ScheduledTrigger.objects.filter(
            pk=schedule.pk, state=ScheduleState.SCHEDULED
        ).update(state=ScheduleState.CANCELLED)
        if changed != 1:
            raise ValidationError(gettext("This schedule already fired or was cancelled."))
        record_audit_event(
            actor=actor,
            tenant=schedule.tenant,
            action="schedule.cancelled",
            object_type="schedule",
            object_id=schedule.pk,
            summary={"fire_at": schedule.fire_at.isoformat()},
        )
    schedule.refresh_from_db()


# A countdown task is only used for schedules this close; beat's frequent pass catches the rest
# (countdowns stay far below the broker's visibility timeout, see docs/engine.md "Workers").
COUNTDOWN_WINDOW_SECONDS = 15 * 60
SCHEDULER = Actor.system("scheduler")


def _wake_at(schedule: ScheduledTrigger) -> None:
    delay = (schedule.fire_at - utc_now()).total_seconds()
    if delay > COUNTDOWN_WINDOW_SECONDS:
        return

    def enqueue() -> None:
        # By name: the task module imports this one. Importing it registers the task (a worker's
        # autodiscovery has already done so; a web process has not).
        import_module("campaigns.tasks")
        current_app.tasks["campaigns.fire_due_schedules"].apply_async(countdown=max(0.0, delay))

    transaction.on_commit(enqueue, robust=True)


def schedules_fire_due(*, limit: int = 100) -> int:
    """Fire every schedule whose time has come; how many fired (or failed to).

    Each schedule is claimed with `SELECT … FOR UPDATE SKIP LOCKED` and fired in the same
    transaction that creates its trigger group, so two beats or workers never fire one schedule
    twice, and a process that dies mid-fire rolls back to "scheduled" (fired on the next pass).
    """
    handled = 0
    # A schedule of a paused tenant or connection waits (still scheduled) and fires on the first
    # pass after the resume.
    paused_tenants, paused_connections = paused_scopes()
    while handled < limit:
        with transaction.atomic():
            schedule = (
                ScheduledTrigger.objects.select_for_update(skip_locked=True)
                .filter(state=ScheduleState.SCHEDULED, fire_at__lte=utc_now())
                .exclude(
                    Q(generator__tenant_id__in=paused_tenants)
                    | Q(generator__connection_id__in=paused_connections)
                )
                .select_related("generator", "generator__tenant", "generator__connection")
                .order_by("fire_at", "id")
                .first()
            )
            if schedule is None:
                return handled
            if _fire(schedule) is False:
                return handled  # paused meanwhile: the next pass lists it as paused
        handled += 1
    return handled


def _fire(schedule: ScheduledTrigger) -> bool | None:
    # Fired as its requester (whoever last set what it sends), so that the four-eyes check of
    # its runs' approval compares the approver with that person.
    actor = Actor(
        user=schedule.requested_by,
        label=f"{schedule.requested_by_label} (schedule #{schedule.pk})",
    )
    now = utc_now()
    try:
        with transaction.atomic():
            group = campaign_trigger(
                actor=actor,
                generator=schedule.generator,
                topic_keys=schedule.topic_keys,
                context=schedule.context,
                idempotency_key=f"schedule-{schedule.pk}",
                send_anyway=schedule.send_anyway,
                schema_version=schedule.schema_version,
            )
    except SendingPaused:
        # Paused since this pass listed the paused scopes: it stays scheduled, for the resume.
        return False
    except (ValidationError, ProbableDuplicate) as error:
        message = "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)
        _fail_schedule(schedule, now, message)
        return
    except DatabaseError:
        # The database itself failed (a lost connection, a deadlock): the claim rolls back and
        # the next pass fires the schedule again; nothing was sent.
        raise
    except Exception as error:
        # A defect, not the schedule's fault: without this, the schedule would stay due and
        # every pass would stop on it, holding up every schedule behind it.
        logger.exception("Schedule %s could not create its runs", schedule.pk)
        _fail_schedule(
            schedule,
            now,
            "TriggerDesk could not create its runs (an internal error: "
            f"{type(error).__name__}); nothing was sent. Create the trigger again, and tell "
            "your administrator.",
        )
        return
    ScheduledTrigger.objects.filter(pk=schedule.pk).update(
        state=ScheduleState.FIRED, fired_at=now, group=group
    )
    record_audit_event(
        actor=SCHEDULER,
        tenant=schedule.tenant,
        action="schedule.fired",
        object_type="schedule",
        object_id=schedule.pk,
        summary={
            "group": group.pk,
            "late_seconds": round((now - schedule.fire_at).total_seconds(), 1),
        },
    )


def _fail_schedule(schedule: ScheduledTrigger, now: datetime, message: str) -> None:
    """Record that `schedule` could not fire, and why, in words its pages show."""
    ScheduledTrigger.objects.filter(pk=schedule.pk).update(
        state=ScheduleState.FAILED, fired_at=now, failure_message=message[:2000]
    )
    record_audit_event(
        actor=SCHEDULER,
        tenant=schedule.tenant,
        action="schedule.failed",
        object_type="schedule",
        object_id=schedule.pk,
        summary={"reason": message[:500]},
    )
