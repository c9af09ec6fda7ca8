"""What a recurring schedule can fire: feature apps contribute targets (AppConfig.recurring_targets,
kind -> dotted path of an object with this shape), so the core imports none of them.

A target checks what a person asked it to send (`check`, when a schedule is saved) and submits
it through its app's own services at a fire (`fire`), so approvals, policies, windows, pauses and
the daily trigger's rules all apply exactly as for a click.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from dashboard import plugins
from dashboard.audit.trail import Actor
from dashboard.models import Tenant


@dataclass(frozen=True)
class CheckedTarget:
    """A target's checked parameters (as stored), what it sends in words, and its connection."""

    parameters: dict[str, Any]
    label: str
    connection_id: int | None


class FireSkipped(Exception):
    """A fire the target's own rules skip (the daily trigger already ran today, the files of the
    day have not landed): recorded as skipped, with this reason."""


class Target(Protocol):
    kind: str

    @property
    def label(self) -> str: ...

    def choices(self, *, tenant: Tenant) -> list[tuple[int, str]]:
        """The tenant's objects this target can fire (id, name), for the forms."""
        ...

    def check(
        self, *, tenant: Tenant, target_input: dict[str, Any], stored: dict[str, Any] | None
    ) -> CheckedTarget:
        """Check `target_input` ({"id", "topics", "context", "recipients", "matching",
        "wait_time_for_validation_seconds"}: what it needs of them); `stored` is the schedule's
        current parameters when it is edited. ValidationError naming the field."""
        ...

    def form_values(self, *, parameters: dict[str, Any]) -> dict[str, Any]:
        """The stored parameters as the form's fields (never a stored recipient list)."""
        ...

    def fire(
        self,
        *,
        actor: Actor,
        tenant: Tenant,
        parameters: dict[str, Any],
        idempotency_key: str,
        fire_at: datetime,
    ) -> str:
        """Submit one fire through the app's services; what it created, in words. Raises
        SendingPaused / OutsideSendWindow / FireSkipped to skip, ValidationError to fail."""
        ...


def all_targets() -> dict[str, Target]:
    """Every contributed target by kind (imported on first use)."""
    return {
        kind: factory()
        for kind, factory in plugins.named_contributions("recurring_targets").items()
    }


def target_for(kind: str) -> Target:
    """The target of `kind`; ValidationError naming "target_kind" when no app contributes it."""
    found = all_targets().get(kind)
    if found is None:
        raise ValidationError(
            {
                "target_kind": _("Unknown target %(kind)s: choose one of %(kinds)s.")
                % {"kind": repr(kind), "kinds": ", ".join(sorted(all_targets()))}
            }
        )
    return found
