"""The event-generator target of recurring schedules (dashboard.recurring.targets): each fire
is one trigger of the generator for its topics, through campaign_trigger (pauses, windows,
approvals and policies apply as for a click)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from campaigns.event_generators import selectors, services
from campaigns.event_generators.models import EventGenerator
from dashboard.audit.trail import Actor
from dashboard.input_checks import parse_json_text
from dashboard.models import Tenant
from dashboard.recurring.targets import CheckedTarget


def _topic_keys(value: Any) -> list[str]:
    if isinstance(value, str):
        return [key.strip() for key in value.replace(",", "\n").splitlines() if key.strip()]
    if isinstance(value, list):
        return [str(key).strip() for key in value if str(key).strip()]
    return []


class EventGeneratorTarget:
    kind = "event_generator"
    label = gettext_lazy("Event generator trigger")

    def choices(self, *, tenant: Tenant) -> list[tuple[int, str]]:
        return [(item.pk, item.name) for item in selectors.generator_list(tenant=tenant)]

    def check(
        self, *, tenant: Tenant, target_input: dict[str, Any], stored: dict[str, Any] | None
    ) -> CheckedTarget:
        """The generator (by id), its topics and a context its current schema accepts."""
        try:
            generator_id = int(target_input.get("id") or 0)
        except (ValueError, TypeError):
            generator_id = 0
        generator = (
            selectors.generator_list(tenant=tenant).filter(pk=generator_id).first()
            if 0 < generator_id < 2**63
            else None
        )
        if generator is None:
            raise ValidationError({"target": _("Choose one of the tenant's event generators.")})
        context = target_input.get("context")
        if isinstance(context, str):
            try:
                context = (
                    parse_json_text(context, subject=_("The context")) if context.strip() else {}
                )
            except ValidationError as error:
                raise ValidationError({"context": error.messages}) from None
        elif context is None:
            context = {}
        checked = services.trigger_check(
            generator=generator, topic_keys=_topic_keys(target_input.get("topics")), context=context
        )
        keys = [topic.key for topic in checked.topics]
        return CheckedTarget(
            parameters={"generator": generator.pk, "topics": keys, "context": checked.context},
            label=_("Event generator %(name)s, topics %(topics)s")
            % {"name": generator.name, "topics": ", ".join(keys)},
            connection_id=generator.connection_id,
        )

    def form_values(self, *, parameters: dict[str, Any]) -> dict[str, Any]:
        import json

        return {
            "target": f"{self.kind}:{parameters.get('generator')}",
            "topics": "\n".join(parameters.get("topics") or []),
            "context": json.dumps(parameters.get("context") or {}, indent=2),
        }

    def fire(
        self,
        *,
        actor: Actor,
        tenant: Tenant,
        parameters: dict[str, Any],
        idempotency_key: str,
        fire_at: datetime,
    ) -> str:
        """One trigger group of the generator's stored topics and context."""
        try:
            generator = selectors.generator_get(tenant=tenant, generator_id=parameters["generator"])
        except EventGenerator.DoesNotExist:
            raise ValidationError(_("Its event generator no longer exists.")) from None
        group = services.campaign_trigger(
            actor=actor,
            generator=generator,
            topic_keys=parameters["topics"],
            context=parameters["context"],
            idempotency_key=idempotency_key,
        )
        return _("Trigger group #%(id)s") % {"id": group.pk}
