"""The Altcraft target of recurring schedules (dashboard.recurring.targets): a bulk launch of a
stored recipient list to one trigger campaign at every fire.

Uploaded launch files are deleted after the tenant's retention hours, so a recurring launch does
not point at an earlier upload: the schedule keeps its own list (one value a line, encrypted at
rest like credentials), which is what a marketer expects of "send this list every Monday". Each
fire goes through launch_from_list, read and confirmed at once like an API launch (approvals
and policies then apply); rows that are invalid or empty are skipped, as the preview would show.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from campaigns.altcraft_launches import selectors, services
from campaigns.altcraft_launches.models import MATCHING_CHOICES, LaunchKind
from dashboard.audit.trail import Actor
from dashboard.models import Tenant
from dashboard.recurring.models import RecurringSchedule
from dashboard.recurring.targets import CheckedTarget
from dashboard.tenancy.crypto import decrypt_secret, encrypt_secret, reencrypt_secret

MAX_RECIPIENTS = 10_000
MATCHING_KINDS = {value for value, _label in MATCHING_CHOICES}


class AltcraftLaunchTarget:
    kind = "altcraft_launch"
    label = gettext_lazy("Altcraft launch of a stored list")

    def choices(self, *, tenant: Tenant) -> list[tuple[int, str]]:
        return [(item.pk, item.name) for item in selectors.trigger_list(tenant=tenant)]

    def check(
        self, *, tenant: Tenant, target_input: dict[str, Any], stored: dict[str, Any] | None
    ) -> CheckedTarget:
        """The trigger campaign, the matching kind and the list (kept when left empty on an
        edit)."""
        errors: dict[str, list[str]] = {}
        try:
            trigger_id = int(target_input.get("id") or 0)
        except (ValueError, TypeError):
            trigger_id = 0
        trigger = (
            selectors.trigger_list(tenant=tenant).filter(pk=trigger_id).first()
            if 0 < trigger_id < 2**63
            else None
        )
        if trigger is None:
            errors["target"] = [_("Choose one of the tenant's Altcraft trigger campaigns.")]
        matching = (target_input.get("matching") or "").strip() or (
            trigger.default_matching if trigger is not None else "email"
        )
        if matching not in MATCHING_KINDS or matching == "custom":
            errors["matching"] = [_("Match recipients by email, phone or profile ID.")]
        text = target_input.get("recipients") or ""
        values = [line.strip() for line in str(text).splitlines() if line.strip()]
        encrypted = None
        if values:
            if len(values) > MAX_RECIPIENTS:
                errors["recipients"] = [
                    _("A stored list has at most %(count)s recipients.")
                    % {"count": f"{MAX_RECIPIENTS:,}"}
                ]
            encrypted = encrypt_secret("\n".join(values))
        elif stored is not None and stored.get("recipients"):
            encrypted = stored["recipients"]
            values = [""] * int(stored.get("recipient_count") or 0)
        else:
            errors["recipients"] = [_("Give the list of recipients, one a line.")]
        if errors:
            raise ValidationError(errors)
        assert trigger is not None
        return CheckedTarget(
            parameters={
                "trigger": trigger.pk,
                "matching": matching,
                "recipients": encrypted,
                "recipient_count": len(values),
            },
            label=_("Altcraft %(name)s: a stored list of %(count)d recipients")
            % {"name": trigger.name, "count": len(values)},
            connection_id=trigger.connection_id,
        )

    def form_values(self, *, parameters: dict[str, Any]) -> dict[str, Any]:
        return {
            "target": f"{self.kind}:{parameters.get('trigger')}",
            "matching": parameters.get("matching") or "",
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
        """One bulk launch of the stored list, read and confirmed at once."""
        trigger = selectors.trigger_list(tenant=tenant).filter(pk=parameters["trigger"]).first()
        if trigger is None:
            raise ValidationError(_("Its Altcraft trigger campaign no longer exists."))
        matching = parameters["matching"]
        try:
            launch = services.launch_from_list(
                actor=actor,
                trigger=trigger,
                kind=LaunchKind.START_BATCH,
                text=decrypt_secret(parameters["recipients"]),
                matching=matching,
                source_name=_("Recurring schedule list"),
                parameters={"matching": matching},
                idempotency_key=idempotency_key,
                read_now=True,
                skip_invalid=True,
                skip_empty=True,
                confirm=True,
            )
        except services.ListRefused as refused:
            raise ValidationError(str(refused)) from None
        return _("Altcraft launch #%(id)s") % {"id": launch.pk}


def rotate_stored_lists(rotation: Any) -> None:
    """Re-encrypt every recurring schedule's stored list under the newest key (a key-rotation
    hook, AppConfig.key_rotation_hooks): a list left under an old key could not be read once
    that key is removed, and its schedule's fires would fail."""
    with transaction.atomic():
        for schedule in RecurringSchedule.objects.select_for_update().filter(
            target_kind=AltcraftLaunchTarget.kind
        ):
            stored = schedule.parameters.get("recipients")
            if stored:
                schedule.parameters = {
                    **schedule.parameters,
                    "recipients": reencrypt_secret(stored),
                }
                schedule.save(update_fields=["parameters"])
